"""Create the bucket of ``MUGPOS_STORE`` on ``MUGPOS_S3_ENDPOINT`` when it is missing.

The one-shot ``init`` service of docker-compose.yml runs it against MinIO before the workers start.
It is for local stacks: on Cloudflare R2 or AWS create the bucket (and a token scoped to it) in
their consoles instead. Retries while the store is still starting; exit 0 when the bucket exists,
1 when it could not be created, 2 on invalid settings.
"""

from __future__ import annotations

import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mugpos.core.settings import SettingsError, load_settings
from mugpos.storage.store import parse_uri

ATTEMPTS = 10
MISSING = {"404", "NoSuchBucket", "NotFound"}


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    location = parse_uri(settings.store, allow_empty_key=True)
    if location.scheme == "file":
        print(f"store is {settings.store}: no bucket to create")
        return 0
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint or None,
        region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id.get_secret_value() if settings.aws_access_key_id else None,
        aws_secret_access_key=(
            settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        ),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=5, read_timeout=10),
    )
    bucket = location.bucket
    last = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            s3.head_bucket(Bucket=bucket)
            print(f"bucket {bucket} exists on {settings.s3_endpoint or 'AWS'}")
            return 0
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                try:
                    s3.create_bucket(Bucket=bucket)
                    print(f"bucket {bucket} created on {settings.s3_endpoint or 'AWS'}")
                    return 0
                except ClientError as create_exc:
                    if create_exc.response.get("Error", {}).get("Code") in {"BucketAlreadyOwnedByYou"}:
                        return 0
                    last = str(create_exc)
            else:
                last = str(exc)
        except BotoCoreError as exc:
            last = str(exc)
        time.sleep(min(2.0 * attempt, 10.0))
    print(f"error: could not create bucket {bucket} on {settings.s3_endpoint}: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
