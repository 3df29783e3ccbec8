"""staff console users and the queue's index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 11:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import mailbot.db.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('created_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('disabled_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('password_changed_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('locked_until', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', mailbot.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    # The console's queue: open concerns (no response yet) in the order of their clocks.
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_queue', ['responded_at', 'status', 'received_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_queue')
    op.drop_table('users')
