"""template versions saved in the console, and their approvals

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('template_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False, server_default=''),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('based_on', sa.Integer(), nullable=False, server_default='0'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'name', 'number')
    )
    op.create_table('template_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('approved_by', sa.String(length=200), nullable=False),
    sa.Column('approved_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rollback', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_template_approvals_template', 'template_approvals',
                    ['kind', 'name', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_template_approvals_template', table_name='template_approvals')
    op.drop_table('template_approvals')
    op.drop_table('template_versions')
