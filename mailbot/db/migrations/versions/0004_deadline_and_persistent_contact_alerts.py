"""deadline and persistent-contact alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:37:21.838035
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('created_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent', sa.Boolean(), nullable=False),
    sa.Column('person_key', sa.String(length=400), nullable=True),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contact_id', 'kind')
    )
    with op.batch_alter_table('contact_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_alerts_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_alerts_person_key'), ['person_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contact_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_alerts_person_key'))
        batch_op.drop_index(batch_op.f('ix_contact_alerts_contact_id'))

    op.drop_table('contact_alerts')
