from django.http import Http404
from django.shortcuts import render

from . import store
from .search import RANGES, Search, search


def simulation_list(request):
    query = Search.from_params(request.GET)
    runs = [] if query.problems else [{**run, "id": run["_id"]} for run in search(query)]
    codes = ["warpx", "picongpu", "smilei"]
    return render(
        request,
        "simulations/list.html",
        {"runs": runs, "query": query, "codes": codes, "ranges": RANGES, "params": request.GET},
    )


def simulation_detail(request, run_id: str):
    run = store.run(run_id)
    if run is None:
        raise Http404("No such simulation run")
    parameters = [(p["name"], {k: v for k, v in p.items() if k != "name"}) for p in run.get("parameters", [])]
    return render(request, "simulations/detail.html", {"run": run, "run_id": run["_id"], "parameters": parameters})
