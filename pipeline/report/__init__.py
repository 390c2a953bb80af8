"""`ferflow report`: what a change did to metrics, params and plots, as Markdown.

`dvc_diff` asks DVC what changed between two revisions, `plots` draws the plot diffs as
PNGs, `markdown` writes the report, `cli` ties them together. Importing this package pulls
in nothing heavy: matplotlib loads only when plots are drawn.
"""
