"""The retraining pipeline: a Step Functions state machine built from one construct per phase.

- retraining: RetrainingPipeline, which creates what the phases share and chains them;
- prepare, train, gate, recommend, deploy, record, failure: the phases, each a StateMachineFragment that
  owns its states, its Lambda steps and the permissions the state machine's role needs for them
  (`grant(role)`);
- steps: LambdaStep, a function with its grants and the state that invokes it;
- asl: the Amazon States Language shapes every phase is written in (tasks, invocations, notifications,
  retries);
- paths: where each phase leaves its result in the execution's state, and the JSONPaths that read it;
- shared: SharedResources and the grants several phases make; images: the container images.
"""

from stacks.pipeline.retraining import RetrainingPipeline

__all__ = ["RetrainingPipeline"]
