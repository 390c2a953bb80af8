"""DVC stage `train`: fit the network `model.name` on the prepared train split.

Model selection (best epoch) uses the validation split only. Writes `paths.model` (the
network without augmentation) and a DVCLive log in `paths.train_log`. Interrupt it and run
`dvc repro` again: training resumes from the last completed epoch.
"""

from __future__ import annotations

from pipeline.config import load_params, repo_path
from pipeline.training.run import train_and_save


def main() -> None:
    params = load_params()
    paths = params["paths"]
    train_and_save(
        params,
        prepared_dir=repo_path(paths["prepared"]),
        model_path=repo_path(paths["model"]),
        log_dir=repo_path(paths["train_log"]),
        resume_dir=repo_path(paths["train_resume"]),
    )


if __name__ == "__main__":
    main()
