// Render untrusted agent output: marked -> DOMPurify -> highlight.js, plus Copy buttons.
import { Marked } from '/vendor/marked.esm.js';
import DOMPurify from '/vendor/purify.es.mjs';
import hljs from '/vendor/highlight.min.js';
import { makeCopyButton } from '/assets/api.js';

hljs.configure({ ignoreUnescapedHTML: true });

function escapeHtml(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Remote images in agent output could be used to leak conversation data via
    // the URL, so show them as plain links instead of loading them.
    image({ href, title, text }) {
      const label = text || title || href || 'image';
      return `<a href="${escapeHtml(href)}">${escapeHtml(label)}</a>`;
    },
  },
});

const purifyConfig = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['img', 'style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'video', 'audio',
    'source', 'picture', 'iframe', 'object', 'embed', 'svg', 'math', 'link', 'meta', 'base'],
  FORBID_ATTR: ['style', 'id', 'srcset'],
  ALLOW_DATA_ATTR: false,
};

// Only keep class="language-xxx" on <code> (for highlighting); drop every other class.
DOMPurify.addHook('uponSanitizeAttribute', (node, data) => {
  if (data.attrName === 'class' && !(node.nodeName === 'CODE' && /^language-[\w.+#-]+$/.test(data.attrValue))) {
    data.keepAttr = false;
  }
});

// Open links in a new tab, without referrer or opener.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

/** Sanitized HTML for a markdown string. */
export function markdownToSafeHtml(text) {
  let html;
  try {
    html = marked.parse(String(text ?? ''), { async: false });
  } catch {
    html = `<p>${escapeHtml(text)}</p>`;
  }
  return DOMPurify.sanitize(html, purifyConfig);
}

/**
 * Render markdown into `el` (replacing its content). Code blocks get syntax
 * highlighting and a Copy button. `highlight=false` skips highlighting (cheaper
 * while a reply is still streaming).
 */
export function renderMarkdown(el, text, { highlight = true } = {}) {
  el.innerHTML = markdownToSafeHtml(text);
  for (const code of el.querySelectorAll('pre > code')) {
    const pre = code.parentElement;
    const raw = code.textContent;
    const m = /(?:^|\s)language-([\w.+#-]+)/.exec(code.className);
    const lang = m ? m[1].toLowerCase() : '';
    // Only a block that names its language is coloured: a guess colours prose and logs wrongly.
    const known = lang && hljs.getLanguage(lang);
    if (highlight && known && raw.length < 100_000) {
      try {
        const result = hljs.highlight(raw, { language: lang, ignoreIllegals: true });
        if (result) {
          code.innerHTML = result.value; // hljs output escapes the source text
          code.classList.add('hljs');
        }
      } catch {
        /* leave plain */
      }
    }
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'code-copy';
    btn.dataset.testid = 'code-copy';
    makeCopyButton(btn, () => raw);
    btn.setAttribute('aria-label', lang ? `Copy ${lang} code` : 'Copy code');
    const label = document.createElement('span');
    label.className = 'code-lang';
    label.dataset.testid = 'code-lang';
    label.textContent = lang || 'text';
    pre.tabIndex = 0; // long lines scroll sideways: reachable from the keyboard too
    pre.setAttribute('aria-label', lang ? `${lang} code` : 'Code');
    const head = document.createElement('div');
    head.className = 'code-head';
    head.append(label, btn);
    const wrap = document.createElement('div');
    wrap.className = 'code-block';
    pre.replaceWith(wrap);
    wrap.append(head, pre);
  }
}
