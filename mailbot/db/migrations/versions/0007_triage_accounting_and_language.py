"""triage accounting and language

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unaccounted', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False,
                                      server_default='en'))


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('language')
        batch_op.drop_column('unaccounted')
