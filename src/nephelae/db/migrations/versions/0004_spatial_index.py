"""Spatio-temporal index of the granules: an R*Tree on SQLite, a GiST-indexed `cube` table on PostgreSQL.

Each readable granule with a time coverage gets one box (two when it crosses the antimeridian) in four dimensions:
dataset key, time (hours since 1970), longitude, latitude. The dataset key (a small integer per dataset, kept in
`granule_box_datasets`) puts the dataset filter inside the index, so that a small dataset among millions of
granules of others is found as fast. Triggers on `granules` keep the boxes in step with every write (the indexer,
the ORM, a manual UPDATE), in the writer's own transaction.

Boxes are padded by a little in every dimension (a quarter of a key, 36 s, 0.001 degree): an R-tree ranks its
choices by volume, and a zero-width dimension (one dataset key, an instantaneous granule) makes every volume zero.
The index is a candidate filter only: search re-checks candidates on the exact columns of `granules`.

The names below are left out of the models-versus-migrations comparison (env.py and tests/db/test_migrations.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The padding of the boxes, in key units, hours and degrees (search widens its queries by more than this).
KEY_PAD, TIME_PAD, DEGREE_PAD = 0.25, 0.01, 0.001
INDEXED = "{row}.status = 'ok' AND {row}.time_start IS NOT NULL AND {row}.time_end IS NOT NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _create_postgresql()
    else:
        _create_sqlite()
    # Existing granules get their boxes through the update trigger.
    op.execute("UPDATE granules SET status = status")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS granule_boxes_sync ON granules")
        op.execute("DROP FUNCTION IF EXISTS granule_boxes_sync()")
        op.execute("DROP TABLE IF EXISTS granule_boxes")
    else:
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS granule_rtree_{trigger}")
        op.execute("DROP TABLE IF EXISTS granule_rtree")
    op.execute("DROP TABLE IF EXISTS granule_box_datasets")


# SQLite: an R*Tree virtual table (it stores float32, rounding outward) and three triggers.

SQLITE_HOURS = "((julianday({value}) - 2440587.5) * 24.0)"
SQLITE_INSERT_BOXES = f"""
INSERT OR IGNORE INTO granule_box_datasets (dataset_id) SELECT new.dataset_id WHERE {INDEXED.format(row="new")};
INSERT INTO granule_rtree
SELECT new.id * 2 + part.n, k.key - {KEY_PAD}, k.key + {KEY_PAD},
       {SQLITE_HOURS.format(value="new.time_start")} - {TIME_PAD},
       {SQLITE_HOURS.format(value="new.time_end")} + {TIME_PAD},
       CASE WHEN part.n = 1 THEN -180.0 ELSE coalesce(new.west, -180.0) END - {DEGREE_PAD},
       CASE WHEN part.n = 0 AND new.west > new.east THEN 180.0 ELSE coalesce(new.east, 180.0) END + {DEGREE_PAD},
       coalesce(new.south, -90.0) - {DEGREE_PAD}, coalesce(new.north, 90.0) + {DEGREE_PAD}
FROM granule_box_datasets AS k, (SELECT 0 AS n UNION ALL SELECT 1) AS part
WHERE k.dataset_id = new.dataset_id AND {INDEXED.format(row="new")} AND (part.n = 0 OR new.west > new.east);
"""  # noqa: S608 (built from constants only)
SQLITE_DELETE_BOXES = "DELETE FROM granule_rtree WHERE id IN (old.id * 2, old.id * 2 + 1);"


def _create_sqlite() -> None:
    op.execute(
        "CREATE TABLE granule_box_datasets ("
        "key INTEGER PRIMARY KEY, "
        "dataset_id VARCHAR(128) NOT NULL UNIQUE REFERENCES datasets (id) ON DELETE CASCADE)"
    )
    op.execute("CREATE VIRTUAL TABLE granule_rtree USING rtree(id, d0, d1, t0, t1, x0, x1, y0, y1)")
    op.execute(f"CREATE TRIGGER granule_rtree_insert AFTER INSERT ON granules BEGIN {SQLITE_INSERT_BOXES} END")
    op.execute(
        "CREATE TRIGGER granule_rtree_update AFTER UPDATE ON granules "
        f"BEGIN {SQLITE_DELETE_BOXES} {SQLITE_INSERT_BOXES} END"
    )
    op.execute(f"CREATE TRIGGER granule_rtree_delete AFTER DELETE ON granules BEGIN {SQLITE_DELETE_BOXES} END")


# PostgreSQL: a table of `cube` boxes with a GiST index, kept by one trigger function.

POSTGRESQL_SYNC = f"""
CREATE FUNCTION granule_boxes_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k integer;
    t0 float8;
    t1 float8;
    s float8;
    n float8;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM granule_boxes WHERE granule_id = OLD.id;
    END IF;
    IF TG_OP = 'DELETE' OR NOT ({INDEXED.format(row="NEW")}) THEN
        RETURN NULL;
    END IF;
    SELECT key INTO k FROM granule_box_datasets WHERE dataset_id = NEW.dataset_id;
    IF NOT FOUND THEN
        INSERT INTO granule_box_datasets (dataset_id) VALUES (NEW.dataset_id) ON CONFLICT (dataset_id) DO NOTHING;
        SELECT key INTO k FROM granule_box_datasets WHERE dataset_id = NEW.dataset_id;
    END IF;
    t0 := CAST(extract(epoch FROM NEW.time_start) AS float8) / 3600.0 - {TIME_PAD};
    t1 := CAST(extract(epoch FROM NEW.time_end) AS float8) / 3600.0 + {TIME_PAD};
    s := coalesce(NEW.south, -90.0) - {DEGREE_PAD};
    n := coalesce(NEW.north, 90.0) + {DEGREE_PAD};
    IF NEW.west > NEW.east THEN
        INSERT INTO granule_boxes (granule_id, part, box) VALUES
            (NEW.id, 0, cube(ARRAY[k - {KEY_PAD}, t0, NEW.west - {DEGREE_PAD}, s],
                             ARRAY[k + {KEY_PAD}, t1, 180.0 + {DEGREE_PAD}, n])),
            (NEW.id, 1, cube(ARRAY[k - {KEY_PAD}, t0, -180.0 - {DEGREE_PAD}, s],
                             ARRAY[k + {KEY_PAD}, t1, NEW.east + {DEGREE_PAD}, n]));
    ELSE
        INSERT INTO granule_boxes (granule_id, part, box) VALUES
            (NEW.id, 0, cube(ARRAY[k - {KEY_PAD}, t0, coalesce(NEW.west, -180.0) - {DEGREE_PAD}, s],
                             ARRAY[k + {KEY_PAD}, t1, coalesce(NEW.east, 180.0) + {DEGREE_PAD}, n]));
    END IF;
    RETURN NULL;
END
$$
"""  # noqa: S608 (built from constants only)


def _create_postgresql() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS cube")  # a trusted contrib extension (PostgreSQL >= 13)
    op.execute(
        "CREATE TABLE granule_box_datasets ("
        "key integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "dataset_id varchar(128) NOT NULL UNIQUE REFERENCES datasets (id) ON DELETE CASCADE)"
    )
    op.execute(
        "CREATE TABLE granule_boxes ("
        "granule_id integer NOT NULL, part smallint NOT NULL, box cube NOT NULL, PRIMARY KEY (granule_id, part))"
    )
    op.execute("CREATE INDEX granule_boxes_box ON granule_boxes USING gist (box)")
    op.execute(POSTGRESQL_SYNC)
    op.execute(
        "CREATE TRIGGER granule_boxes_sync AFTER INSERT OR UPDATE OR DELETE ON granules "
        "FOR EACH ROW EXECUTE FUNCTION granule_boxes_sync()"
    )
