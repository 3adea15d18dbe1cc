"""``--logger mlflow``: the run's metrics and parameters in MLflow, in a file store inside the run by default.

The tracking URI is ``MLFLOW_TRACKING_URI`` when the user set it (a server, a database), else the file store
``RUN/mlruns`` (``mlflow ui --backend-store-uri RUN/mlruns`` shows it). MLflow 3 keeps the file store in
maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``; for our own default it is set (unless the user set it), as
the file store is what needs no server and no database driver. The experiment is ``MLFLOW_EXPERIMENT_NAME`` or
``compressor``; the run id is kept in ``RUN/trackers.json`` (with its URI), so a resume continues the same run.

The client API (``MlflowClient``) is used rather than ``mlflow.start_run``: no process-wide active run, so two
runs in one process (the tests, ``compress run``'s stages) cannot log into each other.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, ClassVar

from compressor.engine.tracker_base import Session, flatten, read_ids, write_id
from compressor.utils.extras import require

EXPERIMENT = "compressor"
MAX_PARAM_CHARS = 500  # MLflow's smallest limit on a parameter's value (older servers); longer values are cut
BATCH = 100  # log_batch takes at most 100 parameters per call


IN_RUN = "RUN/mlruns"  # trackers.json's name of the default store, which moves with the run directory


def tracking_uri(session: Session) -> tuple[str, str]:
    """``(URI, how trackers.json names the store)``: ``MLFLOW_TRACKING_URI``, else the file store ``RUN/mlruns``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # recent MLflow 3 (3.18 here) refuses it otherwise
    return session.run.mlflow_dir.resolve().as_uri(), IN_RUN


class MlflowTracker:
    name: ClassVar[str] = "mlflow"
    rewinds: ClassVar[bool] = False

    def __init__(self) -> None:
        self.client: Any = None
        self.run_id: str | None = None
        self.last_step = 0

    def start(self, session: Session) -> None:
        require("mlflow", "--logger mlflow")
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri, store = tracking_uri(session)
        self.client = client = MlflowClient(tracking_uri=uri)
        self.last_step = session.last_step
        previous = read_ids(session.run).get(self.name) or {}
        run = None
        if previous.get("run_id") and previous.get("store") == store:  # a run moved or copied keeps its own store
            try:
                run = client.get_run(previous["run_id"])
            except MlflowException:  # deleted from the store: start another
                run = None
        if run is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
            run = client.create_run(experiment_id, run_name=session.run.path.name,
                                    tags={"compressor.run_dir": str(session.run.path.resolve())})
        else:
            client.update_run(run.info.run_id, status="RUNNING")
        self.run_id = run.info.run_id
        write_id(session.run, self.name, {"run_id": self.run_id, "experiment_id": run.info.experiment_id,
                                          "store": store})
        self._log_params(session.params, dict(run.data.params))

    def _log_params(self, params: dict[str, Any], logged: dict[str, str]) -> None:
        """Each parameter once: MLflow refuses to change a logged value, so a resume adds only new keys."""
        from mlflow.entities import Param

        new = []
        for key, value in flatten(params).items():
            if key not in logged:
                text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
                new.append(Param(key, text[:MAX_PARAM_CHARS]))
        for i in range(0, len(new), BATCH):
            self.client.log_batch(self.run_id, params=new[i:i + BATCH])

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def log_summary(self, values: dict[str, float]) -> None:
        self.log(self.last_step, values)  # MLflow has no summary: the figures sit at the last training step

    def close(self) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id)
            self.run_id = None
