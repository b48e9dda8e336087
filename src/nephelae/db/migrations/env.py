"""Alembic environment: always run from code with a connection in `config.attributes`."""

from typing import Any

from alembic import context

from nephelae.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `nephelae db upgrade`, which passes a connection")

# The spatio-temporal index of the catalog (migration 0004) is raw SQL with no model: an R*Tree virtual table and
# its shadow tables on SQLite, a `cube` table on PostgreSQL, and their dataset keys. Autogenerate must not drop them.
SPATIAL_INDEX_TABLES = frozenset(
    {
        "granule_box_datasets",
        "granule_boxes",
        "granule_rtree",
        "granule_rtree_node",
        "granule_rtree_parent",
        "granule_rtree_rowid",
    }
)


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    return not (type_ == "table" and name in SPATIAL_INDEX_TABLES)


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
