from django.db import migrations


def add_relay_route(apps, schema_editor):
    Route = apps.get_model("watcher", "Route")
    Route.objects.get_or_create(
        name="relay-shots",
        defaults={
            "topic": "labbook.shots",
            "collection": "shots",
            "id_strategy": "event_id",
            "timestamp_field": "laser_ts_ns",
            "require_envelope": True,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("watcher", "0001_route")]
    operations = [migrations.RunPython(add_relay_route, migrations.RunPython.noop)]
