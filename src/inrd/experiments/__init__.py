"""One module per figure of the paper, each with ``run(out_dir, ...) -> dict`` that writes the figure
(PNG) and a JSON of every parameter and number. ``inrd reproduce figN`` calls them."""

FIGURES = {
    "fig1": "inrd.experiments.fig1",
    "fig2": "inrd.experiments.fig2",
    "fig3": "inrd.experiments.fig3",
    "fig4": "inrd.experiments.fig4",
    "analysis": "inrd.experiments.analysis",  # closed-form schedule analysis on Gaussian data (not a paper figure)
    "pnp-table": "inrd.experiments.pnp_table",  # raw PnP-PGD vs linear deconvolution on 14 photographs (issue 6)
    "quality": "inrd.experiments.quality",  # inrd-small: sample quality against steps, IND vs INRD (issue 5)
}
