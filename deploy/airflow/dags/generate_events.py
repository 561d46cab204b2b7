"""generate_events: a bounded burst of synthetic tracking events (the producer task).

Runs `sluice generate --profile recruitment` for at most `duration` seconds and `count` events
into Kafka (keyed by job_id, idempotent producer) or into an NDJSON file, the way the original
project's user-profile and view_log producer tasks fed its streaming jobs. Trigger it by hand or
from another DAG; the parameters can be overridden per run (`airflow dags trigger -c '{...}'`):
  to        kafka://HOST:PORT/TOPIC or a file path           kafka://127.0.0.1:9092/tracking
  count     number of events                                  100000
  rate      events per second (0: as fast as possible)        2000
  seed      random seed (the same seed, the same events)      1
  duration  seconds after which the producer is stopped       600
            (SIGINT: it flushes what it sent and exits 0)
The sluice binary and working directory come from the Variables sluice_bin and
sluice_project_dir (or SLUICE_BIN / SLUICE_PROJECT_DIR), as for recruitment_incremental.
"""

import pendulum
from airflow.models.param import Param
from airflow.operators.bash import BashOperator

from sluice_operator import BIN, PROJECT_DIR, sluice_dag

with sluice_dag(
    dag_id="generate_events",
    description="sluice generate: synthetic recruitment tracking events into Kafka or a file",
    schedule=None,
    tags=["sluice", "producer"],
    params={
        "to": Param("kafka://127.0.0.1:9092/tracking", type="string", minLength=1),
        "count": Param(100000, type="integer", minimum=1),
        "rate": Param(2000, type="number", minimum=0),
        "seed": Param(1, type="integer", minimum=0),
        "duration": Param(600, type="integer", minimum=1),
    },
    default_args={"owner": "data-platform", "retries": 0},
    doc_md=__doc__,
) as dag:
    BashOperator(
        task_id="generate",
        # timeout stops the producer after `duration` seconds with SIGINT (it then flushes and
        # exits 0; --preserve-status keeps that status) and kills it 30 s later if it hangs.
        bash_command=(
            f'cd "{PROJECT_DIR}" && exec timeout --preserve-status --signal=INT --kill-after=30 '
            "{{ params.duration | int }} "
            f'"{BIN}" generate --profile recruitment '
            "--to {{ params.to | shell_quote }} --count {{ params.count | int }} "
            "--rate {{ params.rate | float }} --seed {{ params.seed | int }}"
        ),
        skip_on_exit_code=None,
        append_env=True,
        execution_timeout=pendulum.duration(hours=1),
    )
