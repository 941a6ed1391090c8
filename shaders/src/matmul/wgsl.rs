//! The WGSL of a tiled variant: `wgsl/matmul_tiled.wgsl` (the skeleton: tile constants,
//! workgroup buffers, the double-buffered K loop) with its placeholders filled in here by the
//! pieces that differ between variants: bindings (vec4 or scalar elements, with or without a
//! bias), the tile loads, the unrolled register step and the stores of C.
//!
//! Nothing here decides which variant to run (see `tune.rs`), and nothing touches a device.

use std::fmt::Write;

use super::{Layout, Tile};

const TEMPLATE: &str = include_str!("../../wgsl/matmul_tiled.wgsl");

/// The template itself, whose digest keys tuning results on disk (a change to the kernels
/// invalidates what was measured with the old ones).
pub(super) fn template() -> &'static str {
    TEMPLATE
}

/// The WGSL of `tile` for `layout`, with vec4 loads and stores when `vec4` (K and N multiples
/// of 4) and scalar ones otherwise.
pub(super) fn source(layout: Layout, tile: Tile, vec4: bool) -> String {
    let Tile { bm, bn, bk, tm, tn } = tile;
    let threads = (bm / tm) * (bn / tn);
    let pieces: [(&str, String); 11] = [
        ("{{BM}}", bm.to_string()),
        ("{{BN}}", bn.to_string()),
        ("{{BK}}", bk.to_string()),
        ("{{TM}}", tm.to_string()),
        ("{{TN}}", tn.to_string()),
        ("{{A_TILE_X2}}", (2 * bk * bm / 4).to_string()),
        ("{{B_TILE_X2}}", (2 * bk * bn / 4).to_string()),
        ("{{BINDINGS}}", bindings(layout, vec4)),
        ("{{LOADS}}", loads(layout, tile, threads, vec4)),
        ("{{STORE_C}}", store_c(layout, vec4)),
        ("{{ACCUMULATORS}}", accumulators(tile)),
    ];
    let mut out = TEMPLATE.to_owned();
    for (placeholder, text) in pieces {
        out = out.replace(placeholder, &text);
    }
    out.replace("{{STEP}}", &step(tile)).replace("{{EPILOGUE}}", &epilogue(tile))
}

fn bindings(layout: Layout, vec4: bool) -> String {
    let element = if vec4 { "vec4<f32>" } else { "f32" };
    let mut out = String::new();
    let _ = writeln!(out, "@group(0) @binding(1) var<storage, read> a: array<{element}>;");
    let _ = writeln!(out, "@group(0) @binding(2) var<storage, read> b: array<{element}>;");
    match layout {
        Layout::Matmul => {
            let _ = write!(out, "@group(0) @binding(3) var<storage, read_write> c: array<{element}>;");
        }
        Layout::Linear => {
            // The bias stays scalar: with has_bias = 0 any buffer, even 4 bytes, is bound.
            let _ = writeln!(out, "@group(0) @binding(3) var<storage, read> bias: array<f32>;");
            let _ = write!(out, "@group(0) @binding(4) var<storage, read_write> c: array<{element}>;");
        }
    }
    out
}

/// One side of a tile whose rows run along K in global memory (A always, W of `linear`):
/// `rows` rows from `origin` (clamped below `extent`), BK columns from k0, stored transposed
/// into `[BK][rows]` of the workgroup buffer.
struct KRows {
    src: &'static str,
    regs: &'static str,
    tile: &'static str,
    tile_len: &'static str,
    origin: &'static str,
    extent: &'static str,
    rows: u32,
    threads: u32,
}

impl KRows {
    fn total(&self, bk: u32, vec4: bool) -> u32 {
        if vec4 { self.rows * bk / 4 } else { self.rows * bk }
    }

    fn load(&self, loads: u32, total: u32, vec4: bool) -> String {
        let KRows { src, regs, origin, extent, .. } = self;
        let body = if vec4 {
            format!(
                "        let row = min({origin} + l / (BK / 4u), {extent} - 1u);\n\
                 \x20       let col = min(k0 / 4u + l % (BK / 4u), k / 4u - 1u);\n\
                 \x20       {regs}[s] = {src}[row * (k / 4u) + col];\n"
            )
        } else {
            format!(
                "        let row = min({origin} + l / BK, {extent} - 1u);\n\
                 \x20       let col = min(k0 + l % BK, k - 1u);\n\
                 \x20       {regs}[s] = {src}[row * k + col];\n"
            )
        };
        guarded_loop(loads, total, self.threads, &body)
    }

    fn store(&self, loads: u32, total: u32, vec4: bool) -> String {
        let KRows { regs, tile, tile_len, rows, .. } = self;
        let stride = rows / 4;
        let body = if vec4 {
            format!(
                "        let row = l / (BK / 4u);\n\
                 \x20       let at = buf * {tile_len} + (l % (BK / 4u)) * 4u * {stride}u + row / 4u;\n\
                 \x20       let lane = row % 4u;\n\
                 \x20       let v = {regs}[s];\n\
                 \x20       {tile}[at][lane] = v.x;\n\
                 \x20       {tile}[at + {stride}u][lane] = v.y;\n\
                 \x20       {tile}[at + {}u][lane] = v.z;\n\
                 \x20       {tile}[at + {}u][lane] = v.w;\n",
                2 * stride,
                3 * stride
            )
        } else {
            format!(
                "        let row = l / BK;\n\
                 \x20       {tile}[buf * {tile_len} + (l % BK) * {stride}u + row / 4u][row % 4u] = {regs}[s];\n"
            )
        };
        guarded_loop(loads, total, self.threads, &body)
    }
}

/// `for s in 0..loads { let l = tid + s·THREADS; body }`, with `if l < total` around the body
/// where THREADS·loads overshoots the tile.
fn guarded_loop(loads: u32, total: u32, threads: u32, body: &str) -> String {
    let mut out = format!("    for (var s = 0u; s < {loads}u; s++) {{\n        let l = tid + s * THREADS;\n");
    if loads * threads == total {
        out.push_str(body);
    } else {
        let indented: String = body.lines().map(|line| format!("    {line}\n")).collect();
        let _ = write!(out, "        if (l < {total}u) {{\n{indented}        }}\n");
    }
    out.push_str("    }\n");
    out
}

fn loads(layout: Layout, tile: Tile, threads: u32, vec4: bool) -> String {
    let element = if vec4 { "vec4<f32>" } else { "f32" };
    let a = KRows {
        src: "a",
        regs: "a_regs",
        tile: "a_tile",
        tile_len: "A_TILE",
        origin: "m0",
        extent: "m",
        rows: tile.bm,
        threads,
    };
    let a_total = a.total(tile.bk, vec4);
    let a_loads = a_total.div_ceil(threads);
    let (b_total, b_load, b_store) = match layout {
        Layout::Linear => {
            let w = KRows {
                src: "b",
                regs: "b_regs",
                tile: "b_tile",
                tile_len: "B_TILE",
                origin: "n0",
                extent: "n",
                rows: tile.bn,
                threads,
            };
            let total = w.total(tile.bk, vec4);
            let loads = total.div_ceil(threads);
            (total, w.load(loads, total, vec4), w.store(loads, total, vec4))
        }
        Layout::Matmul => {
            // B's rows run along N: a tile row is BN/4 vec4s, stored as is.
            let total = if vec4 { tile.bk * tile.bn / 4 } else { tile.bk * tile.bn };
            let loads = total.div_ceil(threads);
            let (load, store) = if vec4 {
                (
                    "        let row = min(k0 + l / (BN / 4u), k - 1u);\n\
                     \x20       let col = min(n0 / 4u + l % (BN / 4u), n / 4u - 1u);\n\
                     \x20       b_regs[s] = b[row * (n / 4u) + col];\n"
                        .to_owned(),
                    "        b_tile[buf * B_TILE + l] = b_regs[s];\n".to_owned(),
                )
            } else {
                (
                    "        let row = min(k0 + l / BN, k - 1u);\n\
                     \x20       let col = min(n0 + l % BN, n - 1u);\n\
                     \x20       b_regs[s] = b[row * n + col];\n"
                        .to_owned(),
                    "        let col = l % BN;\n\
                     \x20       b_tile[buf * B_TILE + (l / BN) * (BN / 4u) + col / 4u][col % 4u] = b_regs[s];\n"
                        .to_owned(),
                )
            };
            (total, guarded_loop(loads, total, threads, &load), guarded_loop(loads, total, threads, &store))
        }
    };
    let b_loads = b_total.div_ceil(threads);
    format!(
        "// Staging registers: the next step's tiles, loaded before the current step is computed.\n\
         var<private> a_regs: array<{element}, {a_loads}>;\n\
         var<private> b_regs: array<{element}, {b_loads}>;\n\
         \n\
         fn load_tiles(m0: u32, n0: u32, k0: u32, m: u32, n: u32, k: u32, tid: u32) {{\n\
         {}{}}}\n\
         \n\
         fn store_tiles(buf: u32, tid: u32) {{\n\
         {}{}}}",
        a.load(a_loads, a_total, vec4),
        b_load,
        a.store(a_loads, a_total, vec4),
        b_store,
    )
}

fn store_c(layout: Layout, vec4: bool) -> String {
    let bias = layout == Layout::Linear;
    if vec4 {
        let add = if bias {
            "        if (params[3] != 0u) {\n\
             \x20           out += vec4<f32>(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);\n\
             \x20       }\n"
        } else {
            ""
        };
        format!(
            "// Four neighbouring elements of C, row `row` from column `col` (N is a multiple of 4).\n\
             fn store_c(row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {{\n\
             \x20   if (row < m && col < n) {{\n\
             \x20       var out = v;\n\
             {add}\
             \x20       c[(row * n + col) / 4u] = out;\n\
             \x20   }}\n\
             }}"
        )
    } else {
        let add = if bias {
            "            if (params[3] != 0u) {\n                out += bias[col + j];\n            }\n"
        } else {
            ""
        };
        format!(
            "// Up to four neighbouring elements of C, row `row` from column `col`, skipping those past N.\n\
             fn store_c(row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {{\n\
             \x20   if (row >= m) {{\n\
             \x20       return;\n\
             \x20   }}\n\
             \x20   for (var j = 0u; j < 4u; j++) {{\n\
             \x20       if (col + j < n) {{\n\
             \x20           var out = v[j];\n\
             {add}\
             \x20           c[row * n + col + j] = out;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}"
        )
    }
}

/// Accumulator `acc_{row}_{group}`: row `row` of the invocation's TM, columns of group `group`.
fn accumulators(tile: Tile) -> String {
    let mut out = String::new();
    for row in 0..tile.tm {
        let line: Vec<String> = (0..tile.tn / 4).map(|g| format!("var acc_{row}_{g} = vec4<f32>();")).collect();
        let _ = writeln!(out, "    {}", line.join(" "));
    }
    out.trim_end().to_owned()
}

/// One k of the register tile: TM/4 vec4s of A's column, TN/4 vec4s of B's row, TM·TN/4 vec4
/// fmas (each component its own chain: nothing is reassociated).
fn step(tile: Tile) -> String {
    const LANES: [&str; 4] = ["x", "y", "z", "w"];
    let indent = "                ";
    let mut out = String::new();
    for r in 0..tile.tm / 4 {
        let _ = writeln!(out, "{indent}let a{r} = a_tile[a_base + kk * (BM / 4u) + {r}u * WG_Y];");
    }
    for g in 0..tile.tn / 4 {
        let _ = writeln!(out, "{indent}let b{g} = b_tile[b_base + kk * (BN / 4u) + {g}u * WG_X];");
    }
    for row in 0..tile.tm {
        let (r, lane) = (row / 4, LANES[row as usize % 4]);
        for g in 0..tile.tn / 4 {
            let _ = writeln!(out, "{indent}acc_{row}_{g} = fma(vec4<f32>(a{r}.{lane}), b{g}, acc_{row}_{g});");
        }
    }
    out.trim_end().to_owned()
}

fn epilogue(tile: Tile) -> String {
    let mut out = String::from("    let row0 = m0 + ty * 4u;\n    let col0 = n0 + tx * 4u;\n");
    for row in 0..tile.tm {
        let (r, i) = (row / 4, row % 4);
        for g in 0..tile.tn / 4 {
            let _ = writeln!(
                out,
                "    store_c(row0 + {r}u * WG_Y * 4u + {i}u, col0 + {g}u * WG_X * 4u, m, n, acc_{row}_{g});"
            );
        }
    }
    out.trim_end().to_owned()
}
