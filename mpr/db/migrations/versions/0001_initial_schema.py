"""initial schema: media, timelines, brands and aliases, runs, detections, exposures, brand_exposure view

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 16:46:22.958609
"""
from alembic import op
import sqlalchemy as sa

from mpr.db.models import BRAND_EXPOSURE_VIEW


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('brand',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('logo_key', sa.String(length=1024), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('media_asset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('root', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('fps', sa.Float(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('video_codec', sa.String(length=64), nullable=True),
    sa.Column('audio_codec', sa.String(length=64), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('root', 'key')
    )
    with op.batch_alter_table('media_asset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_asset_fingerprint'), ['fingerprint'], unique=False)

    op.create_table('brand_alias',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('brand_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.String(length=512), nullable=False),
    sa.Column('match_key', sa.String(length=512), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('seen', sa.Integer(), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['brand_id'], ['brand.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('brand_id', 'match_key')
    )
    with op.batch_alter_table('brand_alias', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_brand_alias_match_key'), ['match_key'], unique=False)

    op.create_table('timeline',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('source_asset_id', sa.Integer(), nullable=True),
    sa.Column('chunk_s', sa.Float(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_asset_id'], ['media_asset.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_key', sa.String(length=128), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=1024), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=True),
    sa.Column('timeline_id', sa.Integer(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('profile', sa.String(length=256), nullable=False),
    sa.Column('overrides', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['asset_id'], ['media_asset.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['timeline_id'], ['timeline.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_key')
    )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_flow_run_id'), ['flow_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_source'), ['source'], unique=False)

    op.create_table('timeline_chunk',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('timeline_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('offset_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['media_asset.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['timeline_id'], ['timeline.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('timeline_id', 'position')
    )
    op.create_table('detection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('timeline_id', sa.Integer(), nullable=True),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('brand', sa.String(length=256), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('x1', sa.Float(), nullable=False),
    sa.Column('y1', sa.Float(), nullable=False),
    sa.Column('x2', sa.Float(), nullable=False),
    sa.Column('y2', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('source_stage', sa.String(length=32), nullable=False),
    sa.Column('resolver', sa.String(length=128), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=False),
    sa.Column('frame', sa.String(length=512), nullable=False),
    sa.Column('match_score', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['timeline_id'], ['timeline.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('detection', schema=None) as batch_op:
        batch_op.create_index('ix_detection_run_brand', ['run_id', 'brand'], unique=False)

    op.create_table('exposure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('brand', sa.String(length=256), nullable=False),
    sa.Column('start', sa.Float(), nullable=False),
    sa.Column('end', sa.Float(), nullable=False),
    sa.Column('exposure_s', sa.Float(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('detections', sa.Integer(), nullable=False),
    sa.Column('source_stage', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.create_index('ix_exposure_run_brand', ['run_id', 'brand'], unique=False)
    op.execute(BRAND_EXPOSURE_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW brand_exposure")
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.drop_index('ix_exposure_run_brand')

    op.drop_table('exposure')
    with op.batch_alter_table('detection', schema=None) as batch_op:
        batch_op.drop_index('ix_detection_run_brand')

    op.drop_table('detection')
    op.drop_table('timeline_chunk')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_source'))
        batch_op.drop_index(batch_op.f('ix_run_flow_run_id'))

    op.drop_table('run')
    op.drop_table('timeline')
    with op.batch_alter_table('brand_alias', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_brand_alias_match_key'))

    op.drop_table('brand_alias')
    with op.batch_alter_table('media_asset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_asset_fingerprint'))

    op.drop_table('media_asset')
    op.drop_table('brand')
