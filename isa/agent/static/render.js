// Markdown -> sanitised DOM for the chat page (marked + DOMPurify + highlight.js, vendored in ./vendor).
// The model's text is untrusted: marked turns it into HTML, DOMPurify keeps only inert markup (no script, no on*
// handlers, no javascript: URLs, no forms or frames), and only then does it enter the page, as a DOM fragment.
"use strict";

const Render = (() => {
  const SAFE_URL = /^(https?:|mailto:|#)/i;
  const SAFE_IMAGE = /^data:image\/(png|jpeg|gif|webp);base64,/i;
  const PURIFY = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe", "frame", "object",
      "embed", "svg", "math", "audio", "video", "source", "link", "meta", "base", "dialog", "template"],
    FORBID_ATTR: ["style", "id", "name", "srcset", "formaction", "action"],
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };

  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = node.getAttribute("href") || "";
      if (!SAFE_URL.test(href.trim())) { node.removeAttribute("href"); }
      if (node.hasAttribute("href") && !href.startsWith("#")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    } else if (node.tagName === "IMG") {
      // Only inline raster images: a remote one would leak the reader's address (and CSP blocks it anyway).
      const src = node.getAttribute("src") || "";
      if (!SAFE_IMAGE.test(src)) { node.removeAttribute("src"); node.setAttribute("data-blocked", ""); }
      node.setAttribute("loading", "lazy");
    }
  });

  if (window.hljs) { hljs.configure({ ignoreUnescapedHTML: true }); }
  const parser = new marked.Marked({ gfm: true, breaks: false, async: false });

  function copyButton(label, text) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", label);
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(typeof text === "function" ? text() : text);
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    return button;
  }

  function decorate(root, final) {
    for (const img of root.querySelectorAll("img[data-blocked]")) {
      const note = document.createElement("span");
      note.className = "blocked-image";
      note.textContent = "[image not shown" + (img.alt ? ": " + img.alt : "") + "]";
      img.replaceWith(note);
    }
    for (const table of root.querySelectorAll("table")) {
      const wrap = document.createElement("div");
      wrap.className = "table-wrap";
      wrap.tabIndex = 0;  // scrollable by keyboard when wider than the message
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", "Table");
      table.replaceWith(wrap);
      wrap.appendChild(table);
    }
    for (const pre of root.querySelectorAll("pre")) {
      const code = pre.querySelector("code");
      if (!code) { continue; }
      if (final && window.hljs) {
        const lang = (code.className.match(/language-([\w+#-]+)/) || [])[1];
        if (!lang || hljs.getLanguage(lang)) { hljs.highlightElement(code); }
      }
      const bar = document.createElement("div");
      bar.className = "code-bar";
      const name = document.createElement("span");
      name.textContent = (code.className.match(/language-([\w+#-]+)/) || [, "code"])[1];
      bar.append(name, copyButton("Copy code", () => code.textContent));
      pre.before(bar);
    }
  }

  // Render `text` as Markdown into `element`; `final` adds syntax highlighting (skipped while streaming).
  function markdown(element, text, final) {
    const html = parser.parse(text || "");
    const fragment = DOMPurify.sanitize(html, PURIFY);
    decorate(fragment, final);
    element.replaceChildren(fragment);
  }

  return { markdown, copyButton };
})();
