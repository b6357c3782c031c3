"""An offline IAM check: do the synthesized template's policies allow every AWS call the system makes?

- template.py: the template with its intrinsic functions resolved for a sample account and region;
- evaluate.py: IAM's evaluation of identity-based, S3 bucket, SNS topic and KMS key policies;
- required.py, documented.py: from an API call to the IAM actions, resources and request context it needs;
- states.py, inventory.py, recorder.py: the calls (state machine tasks, platform calls, recorded boto3 calls).

No AWS call is made; tests/tools/iam runs the check in `make test`.
"""
