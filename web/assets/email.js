// The email rule the server applies, shared by the sign-up and settings pages.

/** The server's rule (`Email::parse`): one @, a dotted domain, no spaces, at most 254 bytes. */
export function validEmail(raw) {
  const email = raw.trim().toLowerCase();
  if (!email || new TextEncoder().encode(email).length > 254 || /[\s\p{Cc}]/u.test(email)) return false;
  const at = email.indexOf('@');
  if (at <= 0) return false;
  const domain = email.slice(at + 1);
  return domain.length > 0 && !domain.includes('@') && domain.includes('.') && !domain.startsWith('.') && !domain.endsWith('.');
}
