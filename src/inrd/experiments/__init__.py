"""One module per figure of the paper, and a few experiments of ours, each with ``run(out_dir, ...) -> dict``
that writes its figure (PNG) and a JSON of every parameter and number. ``run`` takes exactly the options it
uses; ``inrd reproduce NAME`` passes it only the options the user gave."""

FIGURES = {
    "fig1": "inrd.experiments.fig1",  # noise schedules
    "fig2": "inrd.experiments.fig2",  # IND vs canonical INRD on pruned grids of a diffusion model
    "fig3": "inrd.experiments.fig3",  # IND with an off-the-shelf denoiser; INRD with TV
    "fig4": "inrd.experiments.fig4",  # plug-and-play deblurring with a light and a diffusion denoiser
    "analysis": "inrd.experiments.analysis",  # closed-form schedule analysis on Gaussian data (not a paper figure)
    "pnp-table": "inrd.experiments.pnp_table",  # raw PnP-PGD vs linear deconvolution on 14 photographs
    "restore-table": "inrd.experiments.restore_table",  # four restoration tasks, every algorithm, 14 photographs
    "quality": "inrd.experiments.quality",  # inrd-small: sample quality against steps, IND vs INRD
}
