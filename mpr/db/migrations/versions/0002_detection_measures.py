"""detection measures and exposure ids (exposure analytics)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

COLUMNS = (
    sa.Column('exposure', sa.Integer(), nullable=True),
    sa.Column('share', sa.Float(), nullable=False, server_default='0'),
    sa.Column('zone', sa.String(length=16), nullable=False, server_default=''),
    sa.Column('placement', sa.String(length=16), nullable=True),
    sa.Column('sharpness', sa.Float(), nullable=True),
    sa.Column('contrast', sa.Float(), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table('detection', schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table('detection', schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column.name)
