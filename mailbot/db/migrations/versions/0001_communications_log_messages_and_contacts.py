"""communications log: messages and contacts

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 23:01:17.675514
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mailbox_state',
    sa.Column('folder', sa.String(length=255), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
    sa.Column('last_poll_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('folder')
    )
    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('mailbox_folder', sa.String(length=255), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
    sa.Column('uid', sa.BigInteger(), nullable=True),
    sa.Column('received_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ingested_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('recognition_reasons', sa.JSON(), nullable=False),
    sa.Column('disposition', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_disposition'), ['disposition'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_message_id'), ['message_id'], unique=False)

    op.create_table('reference_counters',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('year')
    )
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=32), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('received_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('logged_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('related_contact_id', sa.Integer(), nullable=True),
    sa.Column('submitter_name', sa.Text(), nullable=False),
    sa.Column('submitter_email', sa.String(length=320), nullable=False),
    sa.Column('submitter_email_valid', sa.Boolean(), nullable=False),
    sa.Column('submitter_phone', sa.String(length=64), nullable=False),
    sa.Column('relationship_to_prisoner', sa.Text(), nullable=False),
    sa.Column('contact_preference', sa.Text(), nullable=False),
    sa.Column('prisoner_name', sa.Text(), nullable=False),
    sa.Column('prisoner_number', sa.String(length=16), nullable=False),
    sa.Column('prisoner_number_as_typed', sa.Text(), nullable=False),
    sa.Column('prisoner_dob', sa.Date(), nullable=True),
    sa.Column('prisoner_dob_as_typed', sa.Text(), nullable=False),
    sa.Column('establishment', sa.Text(), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('urgency_choice', sa.Text(), nullable=False),
    sa.Column('concern_text', sa.Text(), nullable=False),
    sa.Column('consent_tell_prisoner', sa.Text(), nullable=False),
    sa.Column('consent_understood', sa.Text(), nullable=False),
    sa.Column('portal_reference', sa.String(length=64), nullable=False),
    sa.Column('submitted_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], ),
    sa.ForeignKeyConstraint(['related_contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_pk'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_prisoner_number'), ['prisoner_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_submitter_email'), ['submitter_email'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_submitter_email'))
        batch_op.drop_index(batch_op.f('ix_contacts_received_at'))
        batch_op.drop_index(batch_op.f('ix_contacts_prisoner_number'))

    op.drop_table('contacts')
    op.drop_table('reference_counters')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_message_id'))
        batch_op.drop_index(batch_op.f('ix_messages_disposition'))

    op.drop_table('messages')
    op.drop_table('mailbox_state')
