// Injected into a copy of report.html by test_report_html.py: measures the page as Chromium lays it
// out and writes the findings into a <pre> with id layout-check, for --dump-dom to read.
window.addEventListener("load", () => {
  const out = {figures: 0, cut: [], overlaps: [], legend_over_plot: [], claims: []};
  const meets = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
                          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  for (const svg of document.querySelectorAll("figure svg")) {
    out.figures += 1;
    const id = svg.closest("figure").dataset.experiment;
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll("text")];
    const rects = texts.map(t => t.getBoundingClientRect());
    texts.forEach((t, k) => {
      const r = rects[k];
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        out.cut.push({experiment: id, text: t.textContent, text_box: [r.left, r.top, r.right, r.bottom],
                      svg_box: [box.left, box.top, box.right, box.bottom]});
    });
    // a slanted label's axis-aligned box overlaps its neighbour's without the glyphs touching: not compared
    const flat = texts.map((t, k) => [t, rects[k]]).filter(([t]) => !t.hasAttribute("transform"));
    for (let a = 0; a < flat.length; a++)
      for (let b = a + 1; b < flat.length; b++)
        if (meets(flat[a][1], flat[b][1]))
          out.overlaps.push({experiment: id, texts: [flat[a][0].textContent, flat[b][0].textContent]});
    const legend = svg.querySelector(".legend"), plot = svg.querySelector(".plot");
    if (legend && plot && meets(legend.getBoundingClientRect(), plot.getBoundingClientRect()))
      out.legend_over_plot.push(id);
  }
  for (const c of document.querySelectorAll("article.claim")) {
    const exp = c.dataset.experiment;
    out.claims.push({claim: c.dataset.claim, experiment: exp,
                     figures: c.querySelectorAll(`figure[data-experiment="${exp}"] svg`).length,
                     table_row: !!document.getElementById("exp-" + exp),
                     above_fold: c === document.querySelector("article.claim") ? c.getBoundingClientRect().top < innerHeight : null});
  }
  const pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
