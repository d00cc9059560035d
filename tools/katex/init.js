// Render the TeX that pymdownx.arithmatex (generic mode) leaves in \( \) and \[ \], on every page load
// (mkdocs-material's document$ also fires on instant navigation). KaTeX 0.16.22, vendored: the site works offline.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
