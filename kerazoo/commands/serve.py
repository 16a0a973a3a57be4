"""``kerazoo export``, ``predict`` and ``soak``: TF-Serving SavedModels."""

import json
import sys

from kerazoo.commands.output import check_out


def cmd_export(args):
    """Runs ``kerazoo export``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.serving import export

    path = export(args.run, name=args.name, base_dir=args.base_dir, max_new_tokens=args.max_new_tokens,
                  max_new_tokens_cap=args.max_new_tokens_cap, serving_default=args.serving_default,
                  warmup_xla=args.warmup_xla, quantize=args.quantize)
    print(f"exported: {path}")
    print(f"inspect:  saved_model_cli show --dir {path} --all")
    return 0


def cmd_predict(args):
    """Runs ``kerazoo predict``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.serving.rest import predict

    print(json.dumps(predict(args.export_dir, args.body), ensure_ascii=False, indent=1))
    return 0


def cmd_soak(args):
    """Runs ``kerazoo soak``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.training.runs import write_json
    from kerazoo.serving.soak import soak

    check_out(args.out)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None else 20)
    report = soak(args.export_dir, seconds, concurrency=args.concurrency, interval=args.interval,
                  tolerance_mb=args.tolerance_mb, max_new_tokens=args.max_new_tokens)
    if args.out:
        write_json(args.out, report)
    print(f"soak: {report['requests']:,} requests in {seconds:.0f}s x {report['concurrency']} threads, "
          f"{report['errors']} errors; latency p50 {report['latency_ms_p50'] or 0:.1f} ms, "
          f"p95 {report['latency_ms_p95'] or 0:.1f} ms")
    print(f"RSS: start {report['rss_start_mb']:.1f} MB, after warm-up (half the run) {report['rss_after_warmup_mb']:.1f} MB, "
          f"end {report['rss_end_mb']:.1f} MB, peak {report['rss_peak_mb']:.1f} MB; "
          f"growth {report['growth_mb']:+.1f} MB, slope {report['slope_mb_per_min']:+.2f} MB/min")
    verdict = "memory GREW" if report["grew"] else "no memory growth"
    print(f"verdict: {verdict} (tolerance {report['tolerance_mb']:.0f} MB or 2%)")
    if report["errors"]:
        print(f"first error: {report['first_error']}", file=sys.stderr)
    return 1 if report["grew"] or report["errors"] else 0
