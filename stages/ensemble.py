"""DVC stage `ensemble`: train the extra networks of `ensemble.members` (none by default).

Each member is the `model` and `train` params with its own overrides; `evaluate` averages
their probabilities with the main network's and reports `test_ensemble`. Writes the folder
`paths.ensemble` (networks, their DVCLive logs, members.json), all at once at the end.
"""

from __future__ import annotations

from pipeline.config import load_params, repo_path
from pipeline.training.ensemble import train_members


def main() -> None:
    params = load_params()
    paths = params["paths"]
    train_members(
        params,
        prepared_dir=repo_path(paths["prepared"]),
        out_dir=repo_path(paths["ensemble"]),
        resume_dir=repo_path(paths["ensemble_resume"]),
    )


if __name__ == "__main__":
    main()
