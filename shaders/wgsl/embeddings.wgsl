// hyphae built-in kernel `embeddings`: BERT's input embeddings before their LayerNorm, f32:
//   out[t, c] = (word[id_t, c] + token_type[0, c]) + position[t mod seq, c]
// for the tokens t of a batch of sequences [batch, seq] (token type ids are all 0; the sum is
// in the order Hugging Face's BertEmbeddings adds). Ids past the vocabulary read its last row
// (callers refuse them before dispatch; this only keeps every read in bounds).
//
// Bindings (all @group(0)):
//   0 params      var<storage, read>        array<u32>  [tokens (batch·seq), seq, hidden, vocab]
//   1 ids         var<storage, read>        array<u32>  tokens
//   2 word        var<storage, read>        array<f32>  vocab·hidden
//   3 position    var<storage, read>        array<f32>  (≥ seq)·hidden
//   4 token_type  var<storage, read>        array<f32>  (≥ 1)·hidden
//   5 out         var<storage, read_write>  array<f32>  tokens·hidden
//
// One output element per invocation; dispatch with kernels::linear_workgroups(tokens·hidden, WG).

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> word: array<f32>;
@group(0) @binding(3) var<storage, read> position: array<f32>;
@group(0) @binding(4) var<storage, read> token_type: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let tokens = params[0];
    let seq = max(params[1], 1u);
    let hidden = params[2];
    let vocab = max(params[3], 1u);
    let i = (wg.y * groups.x + wg.x) * WG + local;
    if (hidden == 0u || i >= tokens * hidden) {
        return;
    }
    let t = i / hidden;
    let c = i % hidden;
    let id = min(ids[t], vocab - 1u);
    out[i] = (word[id * hidden + c] + token_type[c]) + position[(t % seq) * hidden + c];
}
