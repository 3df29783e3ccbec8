"""users signed in by Entra ID (OpenID Connect): where an account comes from, and its
identity at the provider

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:45:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False,
                                      server_default='local'))
        batch_op.add_column(sa.Column('external_id', sa.String(length=300), nullable=True))
        batch_op.create_index('ix_users_external_id', ['external_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_external_id')
        batch_op.drop_column('external_id')
        batch_op.drop_column('source')
