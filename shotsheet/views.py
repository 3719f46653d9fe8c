from django.shortcuts import render

from .models import Sheet


def sheet_list(request):
    return render(request, "shotsheet/sheet_list.html", {"sheets": Sheet.objects.all()})
