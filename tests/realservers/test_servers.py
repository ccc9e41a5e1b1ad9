"""The real-server fixtures themselves: each server answers, databases and buckets are
fresh per test, and nothing of one test is seen by the next."""

from __future__ import annotations

import psycopg

from tests.realservers.postgres import PostgresServer
from tests.realservers.seaweed import SeaweedServer


def test_postgres_database_is_fresh_and_private(postgres_server: PostgresServer, postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        db.execute("CREATE TABLE t (x int)")
        assert db.execute("SELECT current_setting('server_encoding')").fetchone() == ("UTF8",)
    assert postgres_url != postgres_server.url() and "127.0.0.1" in postgres_url


def test_postgres_full_text_search_is_there(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        row = db.execute("SELECT to_tsvector('english', 'Kittens were running') @@ "
                         "plainto_tsquery('english', 'kitten runs')").fetchone()
    assert row == (True,)


def test_seaweed_bucket_multipart_round_trip(seaweed_server: SeaweedServer, s3_bucket: str) -> None:
    s3 = seaweed_server.client()
    part = b"x" * (5 * 1024 * 1024)
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key="obj")["UploadId"]
    etags = [s3.upload_part(Bucket=s3_bucket, Key="obj", UploadId=upload, PartNumber=n, Body=body)["ETag"]
             for n, body in ((1, part), (2, b"tail"))]
    s3.complete_multipart_upload(Bucket=s3_bucket, Key="obj", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    got = s3.get_object(Bucket=s3_bucket, Key="obj", Range="bytes=5242878-5242883")["Body"].read()
    assert got == b"xxtail"
    assert s3.list_objects_v2(Bucket=seaweed_server.bucket).get("KeyCount", 0) == 0  # another bucket
