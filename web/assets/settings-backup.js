// Settings: "Download a backup" (GET /api/export, the browser's own download) and "Restore from a
// backup" (POST /api/import, confirmed first; the upload's real progress, then the check and the
// restore, then what came back or why it was refused).
export function initBackup({ root }) {
  const $ = (sel) => root.querySelector(sel);
  const form = $('#restore-form');
  const fileInput = form.elements.namedItem('backup');
  const confirmBox = form.elements.namedItem('confirm');
  const button = form.querySelector('button[type="submit"]');
  const status = $('#restore-status');
  const errorEl = $('#restore-error');

  function show(message, isError) {
    status.textContent = isError ? '' : message;
    status.hidden = isError || !message;
    errorEl.textContent = isError ? message : '';
    errorEl.hidden = !isError;
  }

  form.addEventListener('input', () => show(''));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) return show('Choose a backup file to restore.', true);
    if (!confirmBox.checked) return show('Tick the box to confirm that your chats and files are replaced.', true);
    button.disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/import?confirm=replace');
    xhr.setRequestHeader('Content-Type', 'application/gzip');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) show(`Uploading the backup: ${Math.floor((e.loaded / e.total) * 100)}%`);
    };
    xhr.upload.onload = () => show('Checking the backup, then restoring it (your agent restarts; a sleeping one is woken first)…');
    xhr.onerror = () => { button.disabled = false; show('The upload was cut off. Nothing was changed; try again.', true); };
    xhr.onload = () => {
      button.disabled = false;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: shown below */ }
      if (xhr.status === 401) { location.replace('/login'); return; }
      if (xhr.status !== 200 || !body || !body.restored) {
        const message = body && body.error && body.error.message;
        return show(message || 'The restore did not complete. Nothing was changed.', true);
      }
      const r = body.restored;
      const made = r.created_unix ? ` made on ${new Date(r.created_unix * 1000).toLocaleString()}` : '';
      show(`Restored ${r.files} files (${formatBytes(r.bytes)}) from the backup${made}. Your agent is starting again; your chats are back.`);
      form.reset();
    };
    show('Uploading the backup: 0%');
    xhr.send(file);
  });
}

function formatBytes(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}
