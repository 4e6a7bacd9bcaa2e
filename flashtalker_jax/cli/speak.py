"""`flashtalker speak`: an audio file in, a talking-head mp4 (with that audio) out; `flashtalker demo`."""
from __future__ import annotations

import argparse
import sys

from flashtalker_jax.cli.options import count_list, positive_float, positive_int, seed


def register(subparsers) -> None:
    p = subparsers.add_parser("speak", help="audio -> expressions -> FLAME -> Gaussians -> H.264 mp4 "
                              "with the input audio muxed")
    p.add_argument("--avatar", required=True, help="avatar folder written by `flashtalker adapt`")
    p.add_argument("--audio", required=True, help="speech file (WAV/FLAC/OGG/MP3, any rate/channels)")
    p.add_argument("--a2e", help="motion run of pretrain-a2e / adapt-a2e (diffusion prior or Audio2Param); "
                   "default: the motion prior bundled with the package, for avatars on the procedural "
                   "head only (any other head needs --a2e)")
    pose = p.add_mutually_exclusive_group()
    pose.add_argument("--pose-from", help="VHAP folder whose tracked head pose is replayed "
                      "(default: the identity's pose track stored in the avatar folder)")
    pose.add_argument("--still", action="store_true", help="hold the first tracked head pose (= --pose static)")
    p.add_argument("--pose", choices=("replay", "static", "generated"), default="replay",
                   help="head pose: replay the tracked one (default), static (its first frame), or generated "
                   "from the audio by the avatar's pose database (AVATAR/pose of `flashtalker adapt-pose`; "
                   "any length; in a real-footage avatar's full frame the body-loop frames follow it)")
    p.add_argument("--out", required=True, help="output mp4 (written only when every stage succeeded)")
    p.add_argument("--head-only", action="store_true", help="an avatar trained on real footage: the head "
                   "alone on black at the avatar's size (default: the person's own full frame, torso and "
                   "background from its body loop, joined by its body inpainter; see `flashtalker adapt-body`)")
    p.add_argument("--save-params", help="also write an npz of the per-frame FLAME parameters "
                   "and mouth_opening_mm")
    p.add_argument("--report", help="JSON report of frames and per-stage timings")
    p.add_argument("--batch", type=positive_int, default=16, help="frames rendered per batch")
    p.add_argument("--size", type=positive_int, help="output side in pixels (default: the avatar's resolution)")
    p.add_argument("--fps", type=positive_float, default=None, help="output frame rate (default: audio.io.FPS, 25)")
    p.add_argument("--backend", help="rasterizer backend: auto, reference, pallas, tiles, chunked (default: the "
                   "avatar's; auto = chunked on CPU, Pallas on GPU/TPU)")
    p.add_argument("--style", default="any", help="speaking style of the motion run: 'any' (its "
                   "any-speaker style, default) or one of the identity names it was trained on")
    p.add_argument("--seed", type=seed, default=0, help="sampling seed (diffusion prior)")
    p.add_argument("--sample-steps", type=positive_int, help="DDIM steps of a diffusion a2e run (default: the run's "
                   "task.sample.steps)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_speak)

    p = subparsers.add_parser("demo", help="the whole project on a procedural identity, no downloads: "
                              "synthesise, adapt an avatar, speak with the bundled motion prior -> demo.mp4")
    p.add_argument("--video", help="run the real-person chain on this clip instead (track, adapt over the frame, "
                   "body inpainter, speak in the person's full frame, evaluate the held-out frames; configs/"
                   "demo_real.py): OUT/demo.mp4, still.png, report.json")
    p.add_argument("--out", default="flashtalker_demo", help="output folder (re-running reuses it)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--text", help="sentence to speak (espeak-ng, a voice the identity was not trained on)")
    what.add_argument("--audio", help="speak this audio file instead")
    p.add_argument("--landmarker", help="MediaPipe face_landmarker.task: also measure the mouth opening on "
                   "the rendered frames (report mouth_open_corr_rendered; = --config.face_landmarker)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI size, tiny and fast (= --config demo.py:quick)")
    size.add_argument("--config", help="config file[:preset] (default configs/demo.py, with --video "
                      "configs/demo_real.py); each stage's config is nested in it: --config.adapt.train.steps=300")
    p.set_defaults(func=run_demo, takes_overrides=True)


def run_speak(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.audio.io import FPS
    from flashtalker_jax.pipeline.speaker import load_speaker, motion_run
    from flashtalker_jax.utils.report import print_table, write_report

    a2e, note = motion_run(args.avatar, args.a2e)
    if note:
        print(f"speak: {note}", file=sys.stderr)
    speaker = load_speaker(args.avatar, a2e, pose_from=args.pose_from, still=args.still,
                           batch_size=args.batch, size=args.size, backend=args.backend, fps=args.fps or FPS,
                           seed=args.seed, sample_steps=args.sample_steps, style=args.style,
                           head_only=args.head_only, pose=args.pose)
    if speaker.compositing:
        print(f"speak: full frame {speaker.width}x{speaker.height}; torso and background from the "
              f"identity's recorded frames (body loop), head joined by the {speaker.compositing}", file=sys.stderr)
    result = speaker.speak(args.audio, args.out, save_params=args.save_params,
                           show_progress=not args.quiet)
    fps = result.stage_fps()
    rows = [{"stage": k, "seconds": round(v, 3), "fps": round(fps[k], 1)}
            for k, v in result.stage_seconds.items()]
    rows.append({"stage": "total", "seconds": round(result.total_seconds, 3), "fps": round(fps["total"], 1)})
    print_table(rows)
    write_report(args.report, {"out": str(result.out), "a2e": str(a2e), "bundled_motion_prior": note is not None,
                               "frames": result.frames,
                               "audio_seconds": result.audio_seconds, "size": speaker.avatar.size,
                               "width": speaker.width, "height": speaker.height,
                               "compositing": speaker.compositing or "none (head only)",
                               "first_frame_seconds": result.first_frame_seconds,
                               "batch": args.batch, "stage_seconds": result.stage_seconds,
                               "stage_fps": fps, "total_seconds": result.total_seconds})
    print(result.summary(), file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.pipeline.demo import run_demo as demo
    from flashtalker_jax.utils.report import print_table

    default = "demo_real" if args.video else "demo"
    config = load_config(f"{default}.py:quick" if args.quick else args.config or default, overrides)
    if args.video:
        return run_demo_video(args, config)
    if args.landmarker:
        config.face_landmarker = args.landmarker
    report = demo(args.out, config, text=args.text, audio=args.audio)
    print(f"demo: spoke with the {report['motion_model']} (no audio model trained)", file=sys.stderr)
    print_table([{k: report[k] for k in ("psnr_heldout", "ssim_heldout", "mouth_open_corr_flame_params",
                                         "mouth_open_corr_rendered", "render_fps", "total_seconds")}])
    if report["rendered_mouth_note"]:
        print(f"demo: rendered mouth opening {report['rendered_mouth_note']}", file=sys.stderr)
    print(f"demo: {args.out}/demo.mp4, contact_sheet.png, report.json", file=sys.stderr)
    return 0


def run_demo_video(args: argparse.Namespace, config) -> int:
    from flashtalker_jax.pipeline.demo_real import run_demo_real
    from flashtalker_jax.utils.report import print_table

    if args.landmarker:
        config.track.video.landmarker = args.landmarker
    report = run_demo_real(args.video, args.out, config, text=args.text, audio=args.audio)
    print_table([{"region": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}}
                 for name, scores in report["regions"].items()])
    print(f"demo: pixels: {report['compositing']['pixels']} ({report['compositing']['method']})", file=sys.stderr)
    print(f"demo: {args.out}/demo.mp4 ({report['output_size'][0]}x{report['output_size'][1]}), still.png, "
          f"report.json; {report['seconds']['total']:.0f} s", file=sys.stderr)
    return 0


BENCH_HELP = "Time flashtalker speak: render-stage and whole-pipeline FPS per batch, first-frame latency."


def bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--avatar", required=True, help="avatar folder (or adapt run folder)")
    p.add_argument("--a2e", help="motion run folder (default: the bundled motion prior, procedural-head "
                   "avatars only)")
    p.add_argument("--seconds", type=positive_float, default=60.0, help="clip length")
    p.add_argument("--size", type=positive_int, default=512, help="output side in pixels")
    p.add_argument("--batch", type=count_list, default="1,16", help="batch sizes, comma separated")
    p.add_argument("--audio", help="time this speech file instead of a generated tone")
    p.add_argument("--backend", help="rasterizer backend: auto, reference, pallas, tiles, "
                   "chunked (default: the avatar's; auto = chunked on CPU, Pallas on GPU/TPU)")
    p.add_argument("--report", help="write the JSON report here")


def run_bench(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.cli.bench import rows_exit_code
    from flashtalker_jax.pipeline.bench import bench_speak
    from flashtalker_jax.utils.progress import progress
    from flashtalker_jax.utils.report import print_table, write_report

    from flashtalker_jax.pipeline.speaker import motion_run

    a2e, note = motion_run(args.avatar, args.a2e)
    if note:
        print(f"bench speak: {note}", file=sys.stderr)
    rows = bench_speak(args.avatar, a2e, seconds=args.seconds, size=args.size, batches=args.batch,
                       audio=args.audio, backend=args.backend,
                       progress=lambda it: progress(it, desc="bench speak", unit="batch size"))
    print_table(rows)
    write_report(args.report, {"command": "bench speak", "avatar": args.avatar, "a2e": str(a2e),
                               "seconds": args.seconds, "rows": rows})
    return rows_exit_code(rows, "bench speak")
