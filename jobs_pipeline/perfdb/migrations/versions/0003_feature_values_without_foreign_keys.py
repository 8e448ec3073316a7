"""feature_values without foreign keys; deleting an object or feature with values is refused

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-12 10:00:00

A bulk import spent four fifths of its time checking the two foreign keys row by row. Imports
create or resolve objects and features before they write values, so the keys are kept by
construction; these triggers keep the one other way to orphan values (a delete) closed.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARDED = (("objects", "object_id"), ("features", "feature_id"))


def upgrade() -> None:
    with op.batch_alter_table("feature_values") as batch:
        batch.drop_constraint("fk_feature_values_object_id_objects", type_="foreignkey")
        batch.drop_constraint("fk_feature_values_feature_id_features", type_="foreignkey")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, column in GUARDED:
        message = f"{table} row has feature values: delete them first"
        if postgresql:
            op.execute(
                f"CREATE FUNCTION {table}_keep_values() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF EXISTS (SELECT 1 FROM feature_values WHERE {column} = OLD.id) THEN "
                f"RAISE EXCEPTION '{message}' USING ERRCODE = 'foreign_key_violation'; "
                "END IF; RETURN OLD; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {table}_keep_values BEFORE DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_keep_values()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {table}_keep_values BEFORE DELETE ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM feature_values WHERE {column} = OLD.id) "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, _column in GUARDED:
        op.execute(f"DROP TRIGGER {table}_keep_values" + (f" ON {table}" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION {table}_keep_values()")
    with op.batch_alter_table("feature_values") as batch:
        batch.create_foreign_key(
            "fk_feature_values_object_id_objects", "objects", ["object_id"], ["id"]
        )
        batch.create_foreign_key(
            "fk_feature_values_feature_id_features", "features", ["feature_id"], ["id"]
        )
