"""person pseudonym for repeat counts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 23:51:44.692363
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('install_secret',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_contacts_person_hash'), ['person_hash'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_person_hash'))
        batch_op.drop_column('person_hash')

    op.drop_table('install_secret')
