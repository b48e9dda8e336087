"""Granules by indexing time: standing campaigns (`follow: true`) look up the granules indexed since they last looked.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_granules_dataset_indexed", "granules", ["dataset_id", "indexed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_granules_dataset_indexed", table_name="granules")
