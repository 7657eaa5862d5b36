"""The printed report of bench/serve.py: the table, the breakdown and the three serving targets."""

from __future__ import annotations


def report_lines(r: dict, full: dict | None, apps, concurrency, breakdown) -> list[str]:
    bare, rows, ms = r["bare"], r["rows"], 1e3
    lines = [f"bare model, {name:<5} (in process, sequential, 1 thread): p50 {b['p50'] * ms:.2f} ms (forward alone "
             f"{b['forward'] * ms:.2f} ms)  {b['rps']:.0f} img/s" for name, b in bare.items()]
    lines += ["", f"{'app':<10} {'clients':>7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'p50/bare':>9} "
              f"{'req/s / bare':>13} {'vs unbatched':>13}"]
    res = {(name, clients): result for name, clients, result in rows}
    for name, clients, result in rows:
        own = bare["onnx" if name == "onnx" else "torch"]
        versus = f"{result['rps'] / res[('unbatched', clients)]['rps']:.2f}" if name != "unbatched" else ""
        lines.append(f"{name:<10} {clients:>7} {result['n']:>5} {result['p50'] * ms:>8.1f} {result['p99'] * ms:>8.1f} "
                     f"{result['rps']:>7.1f} {result['p50'] / own['p50']:>9.2f} {result['rps'] / own['rps']:>13.2f} "
                     f"{versus:>13}" + (f"  ({result['failed']} failed)" if result["failed"] else ""))
    lines += ["(against the bare model of the app's own backend; onnx = backend onnxruntime)", "",
              f"where a 1-client request's time goes (p50 of each part, ms; batches wait {r['batch_wait'] * ms:g} ms "
              f"at most)",
              f"{'app':<10} {'client':>7} {'proxy+HTTP':>11} {'ingress':>8} {'hop':>6} {'decode':>7} {'queue':>6} "
              f"{'forward':>8} {'encode':>7}"]
    for name in apps:
        b = breakdown(res[(name, 1)]["timings"])
        lines.append(f"{name:<10} {b['client'] * ms:>7.2f} {b['proxy'] * ms:>11.2f} {b['ingress'] * ms:>8.2f} "
                     f"{b['hop'] * ms:>6.2f} {b['decode'] * ms:>7.2f} {b['queue'] * ms:>6.2f} {b['forward'] * ms:>8.2f} "
                     f"{b['encode'] * ms:>7.2f}")
    floor = r["healthz"]
    lines += ["(ingress: its own work outside the model and the hop, its threads included; hop: the call to the "
              "model replica minus the model's parts; proxy+HTTP: the client's time outside the ingress)",
              f"GET /healthz (client, HTTP proxy and ingress, no model call): p50 {floor['p50'] * ms:.2f} ms at 1 client, "
              f"{floor['rps16']:.0f} req/s at 16 clients", ""]
    lines += targets(r, full, res)
    return lines


def targets(r: dict, full: dict | None, res: dict) -> list[str]:
    bare, ms = r["bare"]["torch"], 1e3
    torch_apps = ("unbatched", "batched", "single")
    best1 = min(torch_apps, key=lambda a: res[(a, 1)]["p50"])
    added = res[(best1, 1)]["p50"] - bare["p50"]
    met1 = added <= 2 * bare["p50"] or added <= 0.005
    best16 = max(torch_apps, key=lambda a: res[(a, 16)]["rps"])
    ratio16 = res[(best16, 16)]["rps"] / bare["rps"]
    lines = ["targets (torch backend; the best app for each):",
             f"  1. p50 added latency at 1 client: {added * ms:.1f} ms ({best1}) over a bare {bare['p50'] * ms:.2f} ms; "
             f"target <= 2x bare ({2 * bare['p50'] * ms:.1f} ms) or <= 5 ms: {'met' if met1 else 'NOT met'}"
             f" (GET /healthz alone takes {r['healthz']['p50'] * ms:.1f} ms)",
             f"  2. throughput at 16 clients / bare model (1 thread): {ratio16:.2f} ({best16}); target >= 0.8: "
             f"{'met' if ratio16 >= 0.8 else 'NOT met'} (GET /healthz, no model at all, reaches "
             f"{r['healthz']['rps16'] / bare['rps']:.2f} of the bare model's img/s)"]
    if full is not None:
        rows = full["rows"]
        gain = rows["batched"]["rps"] / rows["unbatched"]["rps"]
        lines.append(f"  3. full-width {full['image_size']}-px CrossNet, 16 clients: batched {rows['batched']['rps']:.1f} / "
                     f"unbatched {rows['unbatched']['rps']:.1f} req/s = {gain:.2f}; target >= 1.5: "
                     f"{'met' if gain >= 1.5 else 'NOT met'} (bare forward: batch {full['batch']} / batch 1 = "
                     f"{full['ceiling']:.2f}x images/s on one CPU thread; bare request {full['bare']['p50'] * ms:.0f} ms)")
    return lines
