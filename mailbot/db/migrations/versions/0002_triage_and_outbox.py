"""triage and outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 23:07:46.904162
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('in_reply_to', sa.String(length=998), nullable=True),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bounced_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('copy_saved', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_recipient'), ['recipient'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status'), ['status'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        # Contacts logged before triage existed count as safety concerns until a person
        # looks: when in doubt, it is a safety concern.
        batch_op.add_column(sa.Column('is_safer_custody', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column('categories', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('urgency', sa.String(length=32), nullable=False,
                                      server_default='urgent'))
        batch_op.add_column(sa.Column('triage_reasons', sa.JSON(), nullable=False,
                                      server_default='["logged before triage existed"]'))
        batch_op.create_index(batch_op.f('ix_contacts_urgency'), ['urgency'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_urgency'))
        batch_op.drop_column('triage_reasons')
        batch_op.drop_column('urgency')
        batch_op.drop_column('categories')
        batch_op.drop_column('is_safer_custody')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_recipient'))
        batch_op.drop_index(batch_op.f('ix_outbox_created_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_contact_id'))

    op.drop_table('outbox')
