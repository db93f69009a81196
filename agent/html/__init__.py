"""report.html, the run's shareable page: `page.render` builds it, `figures` draws each experiment,
`charts` holds the chart kinds and `svg` the drawing primitives.

Figures are inline SVG written here in pure Python, not plotly with its JavaScript inlined: the page
stays one small self-contained file (tens of kB, not the 3-4 MB plotly.min.js adds to every report)
that opens offline, needs no script to show anything (mail clients and review tools that strip
scripts still show the figures), diffs as text, and adds no dependency. What interactivity a reader
needs (exact values) comes from SVG <title> tooltips, and every value is also written on the figure.
"""
