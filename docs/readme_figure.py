"""Draw docs/readme_figure.png, the front figure of the README and the site: the paper's Fig. 1 (right) fitted as in
notebook 01 (2,000 steps of a 64 x 64 network; four heads here), upper expectiles of y approaching its largest value.
Run: python docs/readme_figure.py"""
from pathlib import Path

from iqlkit.session import start

start()

from iqlkit.experiments.regression import BoundedToy, fit_conditional_expectiles  # noqa: E402
from iqlkit.plots.expectile import conditional_expectiles_figure  # noqa: E402

OUT = Path(__file__).with_name("readme_figure.png")

if __name__ == "__main__":
    toy = BoundedToy()
    x, y = toy.sample(2000, seed=0)
    fit = fit_conditional_expectiles(x, y, (0.1, 0.5, 0.9, 0.99), hidden=(64, 64), steps=2000, lr=3e-3, seed=0)
    conditional_expectiles_figure(x, y, fit, toy).savefig(OUT, dpi=80)
    print(f"wrote {OUT}")
