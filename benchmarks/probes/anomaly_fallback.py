"""Probe (not adopted): an 'anomaly' fallback for biomes deployed with their mean
(docs/product.md, "Tried and not adopted").

Rs(p, y) = level(p) * f(x[p, y]) / mean_y f(x[p, :]),  level(p) = time-mean of the product at p.
f: (a) the pooled NLS model refitted on all biomes' rows (the pooled candidate chosen in
pooled_skill.parquet, refitted like fit._final_fit), (b) the biome's own best nls candidate by
loc_cv_r2 (refitted on its rows; at-bound fits skipped), (c) Q10 = 2 on tas.

Usage: python benchmarks/probes/anomaly_fallback.py --out DIR ROOT [ROOT ...]
ROOT holds soilresp.toml, world/ and run/ (a ``soilresp demo`` folder, or a seed folder of
``benchmarks/bench_calibration.py``). Writes DIR/<root name>.json, then prints per-run tables
and the summary (global OLS trend ratio est/true today and with each variant).
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from soilresp import io
from soilresp.config import BIOMES, load_config
from soilresp.demo import biome_budget
from soilresp.models.base import fallback_kind, load_biome_models
from soilresp.models.cv import candidate_rows
from soilresp.models.nonlinear import FitError, NonlinearRs

warnings.simplefilter("ignore")
np.seterr(all="ignore")
NAME2CODE = {v: k for k, v in BIOMES.items()}
OUT = Path(".")


def slope(s):
    return float(np.polyfit(np.arange(s.size, dtype=float), s, 1)[0])


def fit_nls(df, form, cols, kw):
    rows = candidate_rows(df, cols)
    X, y = df[cols].to_numpy(float)[rows], df["rs"].to_numpy(float)[rows]
    m = NonlinearRs(form, **kw).fit(X, y)
    return m, int(y.size)


def cube_pred(drv, cols, m, mask):
    """f over (year, pixels in mask) -> (years, npix)."""
    arrs = [drv[c].values[:, mask] for c in cols]          # each (Y, P)
    Y, P = arrs[0].shape
    X = np.stack([a.reshape(-1) for a in arrs], 1).astype(float)
    ok = np.isfinite(X).all(1)
    out = np.full(X.shape[0], np.nan)
    if ok.any():
        out[ok] = m.predict(X[ok])
    return out.reshape(Y, P)


def anomaly(f):
    mf = np.nanmean(f, 0, keepdims=True)
    a = f / mf
    bad = ~np.isfinite(a) | ~(mf > 0)
    return np.where(bad, 1.0, a), float(bad.mean())


def probe(root: Path):
    run, world = root / "run", root / "world"
    need = [run / "product/rs.zarr", world / "truth.zarr", run / "drivers/drivers.zarr",
            run / "sites/training.parquet", run / "models/skill.parquet", run / "models/pooled_skill.parquet",
            run / "biomes/biomes.zarr", root / "soilresp.toml"]
    miss = [str(p) for p in need if not p.exists()]
    if miss:
        return {"root": str(root), "skipped": f"missing {miss}"}
    cfg = load_config(root / "soilresp.toml")
    kw = {"t_response": cfg.models.t_response, "q10_range": tuple(float(v) for v in cfg.models.q10_range)}
    bb = biome_budget(run, world)
    ds = io.open_zarr(run / "product/rs.zarr")
    code = ds["biome"].values
    rs = ds["rs"].values.astype(float)
    truth = io.open_zarr(world / "truth.zarr")["rs_true"].values.astype(float)
    area = io.open_zarr(run / "biomes/biomes.zarr")["cell_area"].values.astype(float)
    A = np.broadcast_to(area[:, None], code.shape)
    drv = io.open_zarr(run / "drivers/drivers.zarr").load()
    tab = pd.read_parquet(run / "sites/training.parquet").reset_index(drop=True)
    skill = pd.read_parquet(run / "models/skill.parquet")
    pskill = pd.read_parquet(run / "models/pooled_skill.parquet")
    models = load_biome_models(run / "models", BIOMES)

    # (a) pooled model
    pr = pskill[pskill["selected"]].iloc[0]
    assert pr["family"] == "nls", pr
    pcols = pr["predictors"].split(",")
    ptab = tab[tab["biome"].isin(list(BIOMES))].reset_index(drop=True)
    pm, pn = fit_nls(ptab, pr["form"], pcols, kw)
    pooled_info = {"form": pr["form"], "predictors": pcols, "n": pn, "q10": float(getattr(pm, "q10_", np.nan)),
                   "at_bound": bool(pm.at_bound_), "params": [float(v) for v in pm.params_]}

    def tot(x, mask):  # (Y,) Pg
        return np.nansum(x[:, mask] * A[mask], 1) / 1e15

    g_true = bb["global_true_ols_trend_tg_per_yr2"]
    g_est = bb["global_est_ols_trend_tg_per_yr2"]
    rows = []
    for b in bb["biomes"]:
        c = NAME2CODE[b["biome"]]
        mask = code == c
        kind = b["fallback_kind"]
        t_tru, t_est = tot(truth, mask), tot(rs, mask)
        s_tru, s_est = slope(t_tru) * 1e3, slope(t_est) * 1e3
        assert abs(s_tru - b["true_trend_tg_per_yr2"]) < 1e-3 * max(1, abs(s_tru)), (s_tru, b)
        level = np.nanmean(rs[:, mask], 0, keepdims=True)   # (1, P)
        r = {"biome": c, "name": b["biome"], "kind": kind, "model": b["model"], "npix": int(mask.sum()),
             "true_trend": s_tru, "est_trend": s_est, "true_mean": float(t_tru.mean()), "est_mean": float(t_est.mean())}
        variants = {}
        fa = cube_pred(drv, pcols, pm, mask)
        variants["a"] = (fa, "pooled " + pr["form"] + " " + ",".join(pcols))
        variants["c"] = (2.0 ** (drv["tas"].values[:, mask] / 10.0), "Q10=2 tas")
        if kind in ("mean", "all-mean"):
            sk = skill[(skill["biome"] == c) & (skill["family"] == "nls")].copy()
            own_rows = tab[tab["biome"] == c].reset_index(drop=True)
            src = "own" if len(own_rows) >= cfg.models.min_observations else "pooled-candidate forms on own rows"
            sk = sk.sort_values("loc_cv_r2", ascending=False)
            note = []
            for _, s in sk.iterrows():
                cols = s["predictors"].split(",")
                try:
                    bm, bn = fit_nls(own_rows, s["form"], cols, kw)
                except (FitError, ValueError, KeyError) as e:
                    note.append(f"{s['form']} {s['predictors']}: fit failed {e}")
                    continue
                if bm.at_bound_:
                    note.append(f"{s['form']} {s['predictors']} (loc R2 {s['loc_cv_r2']:.3g}): at bound")
                    continue
                variants["b"] = (cube_pred(drv, cols, bm, mask),
                                 f"{src}: {s['form']} {s['predictors']} loc R2 {s['loc_cv_r2']:.3g} "
                                 f"q10 {float(getattr(bm, 'q10_', np.nan)):.3g} n {bn}")
                break
            r["b_notes"] = note
        for k, (f, desc) in variants.items():
            an, frac_bad = anomaly(f)
            new = np.full_like(rs, np.nan)
            new[:, mask] = level * an
            tn = tot(new, mask)
            r[k] = {"desc": desc, "trend": slope(tn) * 1e3, "trend_ratio": slope(tn) * 1e3 / s_tru,
                    "level_ratio": float(tn.mean() / t_tru.mean()), "frac_filled": frac_bad}
        rows.append(r)
    fb = [r for r in rows if r["kind"] in ("mean", "all-mean")]
    glob = {"true": g_true, "est": g_est, "ratio_today": g_est / g_true}
    for k in ("a", "b", "c"):
        new = g_est - sum(r["est_trend"] for r in fb) + sum(r[k]["trend"] if k in r else r["est_trend"] for r in fb)
        glob[f"ratio_{k}"] = new / g_true
        glob[f"{k}_complete"] = all(k in r for r in fb)
    res = {"root": str(root), "pooled": pooled_info, "global": glob, "biomes": rows,
           "residual": bb["residual"]}
    return res



def summarize(tags):
    def f(x, d=2):
        return "  -  " if x is None else f"{x:.{d}f}"
    G = []
    for t in tags:
        p = OUT / f"{t}.json"
        if not p.exists():
            print(t, "no output"); continue
        r = json.loads(p.read_text())
        if "skipped" in r:
            print(t, "SKIPPED", r["skipped"]); continue
        g = r["global"]; G.append((t, g))
        print(f"\n## {t}  pooled {r['pooled']['form']} {','.join(r['pooled']['predictors'])} q10={r['pooled']['q10']:.2f} at_bound={r['pooled']['at_bound']}")
        print(f"global true {g['true']:.1f} est {g['est']:.1f} ratio today {g['ratio_today']:.3f} | a {g['ratio_a']:.3f} b {g['ratio_b']:.3f}{'' if g['b_complete'] else '*'} c {g['ratio_c']:.3f}")
        print("biome kind   npix true_tr  mean   a(tr,lvl)      b(tr,lvl)      c(tr,lvl)   share_true  b-desc")
        for b in r["biomes"]:
            if b["kind"] not in ("mean", "all-mean"): continue
            cells = []
            for k in "abc":
                cells.append(f"{f(b[k]['trend_ratio'])},{f(b[k]['level_ratio'])}" if k in b else "   n/a   ")
            print(f"{b['biome']:3d} {b['kind']:6s} {b['npix']:5d} {b['true_trend']:7.2f} {b['est_trend']/b['true_trend']:5.2f}  "
                  + "   ".join(cells) + f"   {b['true_trend']/g['true']:.2f}  {b.get('b',{}).get('desc','')} {b.get('b_notes','')}")
        print(" sanity (own/pooled/scaled-deployed biomes): biome kind true_tr  own_ratio  a_ratio  c_ratio")
        for b in r["biomes"]:
            if b["kind"] in ("mean", "all-mean"): continue
            print(f"   {b['biome']:3d} {b['kind'] or 'own':6s} {b['true_trend']:7.2f}  {b['est_trend']/b['true_trend']:6.2f}  {b['a']['trend_ratio']:6.2f}  {b['c']['trend_ratio']:6.2f}  (a/own {b['a']['trend']/b['est_trend'] if b['est_trend'] else float('nan'):.2f})")
    print("\n## summary")
    for t, g in G:
        print(f"{t:7s} today {g['ratio_today']:.3f}  a {g['ratio_a']:.3f}  b {g['ratio_b']:.3f}  c {g['ratio_c']:.3f}")
    seeds = [g for t, g in G if t.startswith("seed")]
    for k in ("today", "a", "b", "c"):
        v = [g[f"ratio_{k}"] for g in seeds]
        print(k, "within20%:", sum(abs(x - 1) <= 0.2 for x in v), "/", len(v), " median", sorted(v)[len(v)//2] if v else None)


def aggregate(tags):
    print("tag    | mean-fb biomes: sum true, sum a, sum b, sum c | own-fit biomes: sum true, sum own, sum a, sum c")
    rows = []
    for t in tags:
        r = json.loads((OUT / f"{t}.json").read_text())
        fb = [b for b in r["biomes"] if b["kind"] in ("mean", "all-mean")]
        own = [b for b in r["biomes"] if b["kind"] == ""]
        st = sum(b["true_trend"] for b in fb)
        sa = sum(b["a"]["trend"] for b in fb); sc = sum(b["c"]["trend"] for b in fb)
        sb = sum(b["b"]["trend"] if "b" in b else 0 for b in fb)
        ot = sum(b["true_trend"] for b in own); oo = sum(b["est_trend"] for b in own)
        oa = sum(b["a"]["trend"] for b in own); oc = sum(b["c"]["trend"] for b in own)
        print(f"{t:7s}| {st:7.2f} a {sa/st:5.2f} b {sb/st:5.2f} c {sc/st:5.2f} (share of global true {st/r['global']['true']:.2f}) | {ot:7.1f} own {oo/ot:5.2f} a {oa/ot:5.2f} c {oc/ot:5.2f}")
        for b in own:
            rows.append((t, b["biome"], b["true_trend"], b["est_trend"], b["a"]["trend"]))
    rows = np.array([(x[2], x[3], x[4]) for x in rows])
    big = rows[:, 0] > 2
    print("own-fit biome-runs with true trend > 2 Tg/yr2:", big.sum())
    ra, ro = rows[big, 2] / rows[big, 0], rows[big, 1] / rows[big, 0]
    print(" median ratio own %.2f  a %.2f ; |ratio-1|<=0.3: own %d a %d ; a>1.3: %d  a<0.7: %d" % (np.median(ro), np.median(ra), (abs(ro-1)<=.3).sum(), (abs(ra-1)<=.3).sum(), (ra>1.3).sum(), (ra<0.7).sum()))


def main():
    import argparse

    global OUT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("anomaly_probe_out"))
    ap.add_argument("roots", nargs="+", type=Path)
    args = ap.parse_args()
    OUT = args.out
    OUT.mkdir(parents=True, exist_ok=True)
    tags = []
    for root in args.roots:
        try:
            res = probe(root)
        except Exception as e:  # report, go on
            import traceback
            res = {"root": str(root), "skipped": f"error {e!r}", "tb": traceback.format_exc()}
        (OUT / f"{root.name}.json").write_text(json.dumps(res, indent=1, default=float))
        tags.append(root.name)
    summarize(tags)
    aggregate([t for t in tags if "skipped" not in json.loads((OUT / f"{t}.json").read_text())])


if __name__ == "__main__":
    main()
