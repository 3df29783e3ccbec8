"""staff actions, closing and retention

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 23:38:58.104251
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('concern_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('department', sa.String(length=32), nullable=True),
    sa.Column('happened_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('concern_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_concern_actions_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_concern_actions_kind'), ['kind'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('responded_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('closed_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('anonymised_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('anonymised_at')
        batch_op.drop_column('outcome')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('responded_by')

    with op.batch_alter_table('concern_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_concern_actions_kind'))
        batch_op.drop_index(batch_op.f('ix_concern_actions_contact_id'))

    op.drop_table('concern_actions')
