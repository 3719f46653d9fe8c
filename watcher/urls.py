app_name = "watcher"
urlpatterns: list = []
