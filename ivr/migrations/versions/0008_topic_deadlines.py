"""topic_deadlines: a deadline per kind of message on a topic

Revision ID: 0008_topic_deadlines
Revises: 0007_followthrough
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_topic_deadlines'
down_revision = '0007_followthrough'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('topic_deadlines',
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('due_working_days', sa.SmallInteger(), nullable=False),
    sa.CheckConstraint("kind IN ('criticism', 'suggestion', 'complaint', 'appreciation', 'request')", name=op.f('ck_topic_deadlines_kind')),
    sa.CheckConstraint('due_working_days BETWEEN 1 AND 365', name=op.f('ck_topic_deadlines_days')),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_topic_deadlines_topic_id_topics'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('topic_id', 'kind', name=op.f('pk_topic_deadlines'))
    )


def downgrade() -> None:
    op.drop_table('topic_deadlines')
