/* The float BitNet b1.58 model (model/bitnet.py's semantics) on one CPU core, in the spirit of
 * llama2.c's run.c: the CPU baseline of `tritium bench cpu`.
 *
 * Usage: bitnet_cpu MODEL.bin NEW_TOKENS PROMPT_ID...
 * Reads the model file fpga/bench/cpu.py writes, feeds the prompt a position at a time, then
 * generates NEW_TOKENS greedily (the first maximum). Prints the new tokens on one line and, on the
 * next, the seconds the generation took (the prompt not included).
 *
 * Every step is model/bitnet.py's, in float32 and in its order: RMSNorm, BitLinear (per-token int8
 * absmax codes rounded half to even, exact integer products with the ternary codes, divided by both
 * scales), rotate_half RoPE, attention over the KV cache with GQA, the relu2 or SiLU gated MLP with
 * its sub-norm, the final norm and the LM head.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { float scale; int rows, cols; int8_t *codes; } Linear;
typedef struct {
    float *input_norm, *post_norm, *attn_sub_norm, *ffn_sub_norm;
    Linear q, k, v, o, gate, up, down;
} Layer;
typedef struct {
    int vocab, hidden, inter, layers, heads, kv_heads, head_dim, positions, silu, tied;
    float eps, theta;
    float *embed, *norm, *lm_head;
    Layer *layer;
} Model;

static FILE *model_file;

static void fail(const char *what) {
    fprintf(stderr, "bitnet_cpu: %s\n", what);
    exit(1);
}

static void *read_array(size_t count, size_t size) {
    void *p = malloc(count * size);
    if (!p) fail("out of memory");
    if (fread(p, size, count, model_file) != count) fail("the model file is cut short");
    return p;
}

static int32_t read_int(void) {
    int32_t v;
    if (fread(&v, 4, 1, model_file) != 1) fail("bad header");
    return v;
}

static float read_float(void) {
    float v;
    if (fread(&v, 4, 1, model_file) != 1) fail("bad header");
    return v;
}

static Linear read_linear(int rows, int cols) {
    Linear l = {read_float(), rows, cols, NULL};
    l.codes = read_array((size_t)rows * cols, 1);
    return l;
}

static Model load(const char *path) {
    Model m;
    char magic[4];
    model_file = fopen(path, "rb");
    if (!model_file) fail("cannot open the model file");
    if (fread(magic, 1, 4, model_file) != 4 || memcmp(magic, "TRI1", 4))
        fail("not a tritium CPU model file (fpga/bench/cpu.py writes them)");
    m.vocab = read_int(); m.hidden = read_int(); m.inter = read_int(); m.layers = read_int();
    m.heads = read_int(); m.kv_heads = read_int(); m.head_dim = read_int(); m.positions = read_int();
    m.silu = read_int(); m.tied = read_int(); m.eps = read_float(); m.theta = read_float();
    int h = m.hidden, q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim;
    m.embed = read_array((size_t)m.vocab * h, 4);
    m.layer = calloc(m.layers, sizeof(Layer));
    for (int i = 0; i < m.layers; i++) {
        Layer *l = &m.layer[i];
        l->input_norm = read_array(h, 4); l->post_norm = read_array(h, 4);
        l->attn_sub_norm = read_array(q, 4); l->ffn_sub_norm = read_array(m.inter, 4);
        l->q = read_linear(q, h); l->k = read_linear(kv, h); l->v = read_linear(kv, h);
        l->o = read_linear(h, q); l->gate = read_linear(m.inter, h); l->up = read_linear(m.inter, h);
        l->down = read_linear(h, m.inter);
    }
    m.norm = read_array(h, 4);
    m.lm_head = m.tied ? m.embed : read_array((size_t)m.vocab * h, 4);
    fclose(model_file);
    return m;
}

static void rms_norm(float *out, const float *x, const float *gain, int n, float eps) {
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i] * x[i];
    float inv = 1.0f / sqrtf(sum / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = gain[i] * (x[i] * inv);
}

/* BitLinear: codes of x (int8 absmax, round half to even), exact sums, both scales divided out. */
static void bit_linear(float *out, const float *x, const Linear *l, int8_t *codes) {
    float peak = 1e-5f;
    for (int i = 0; i < l->cols; i++) peak = fmaxf(peak, fabsf(x[i]));
    float scale = 127.0f / peak;
    for (int i = 0; i < l->cols; i++) {
        float c = nearbyintf(x[i] * scale);
        codes[i] = (int8_t)(c > 127.0f ? 127.0f : c < -128.0f ? -128.0f : c);
    }
    float divisor = scale * l->scale;
    for (int r = 0; r < l->rows; r++) {
        const int8_t *w = l->codes + (size_t)r * l->cols;
        int32_t acc = 0;
        for (int i = 0; i < l->cols; i++) acc += (int32_t)w[i] * codes[i];
        out[r] = (float)acc / divisor;
    }
}

static void rope(float *x, int heads, int d, const float *cos_p, const float *sin_p) {
    int half = d / 2;
    for (int h = 0; h < heads; h++) {
        float *v = x + h * d;
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * cos_p[i] + (-b) * sin_p[i];
            v[i + half] = b * cos_p[i + half] + a * sin_p[i + half];
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 4 || atoi(argv[2]) < 1)
        fail("usage: bitnet_cpu MODEL.bin NEW_TOKENS (at least 1) PROMPT_ID...");
    Model m = load(argv[1]);
    int new_tokens = atoi(argv[2]), prompt = argc - 3;
    if (prompt + new_tokens - 1 > m.positions) fail("the prompt and the new tokens exceed the context");
    int h = m.hidden, d = m.head_dim, qn = m.heads * d, kvn = m.kv_heads * d;
    int wide = m.inter > qn ? m.inter : qn;
    wide = wide > h ? wide : h;
    float *x = calloc(h, 4), *xb = calloc(wide, 4), *q = calloc(qn, 4), *att = calloc(qn, 4);
    float *gate = calloc(m.inter, 4), *up = calloc(m.inter, 4), *out = calloc(h, 4);
    float *scores = calloc(m.positions, 4), *logits = calloc(m.vocab, 4);
    float *cos_p = calloc(d, 4), *sin_p = calloc(d, 4), *inv_freq = calloc(d / 2, 4);
    float *keys = calloc((size_t)m.layers * m.positions * kvn, 4);
    float *values = calloc((size_t)m.layers * m.positions * kvn, 4);
    int8_t *codes = calloc(wide, 1);
    for (int i = 0; i < d / 2; i++) inv_freq[i] = 1.0f / powf(m.theta, (float)(2 * i) / (float)d);
    float attn_scale = (float)pow((double)d, -0.5);
    int group = m.heads / m.kv_heads, token = atoi(argv[3]);
    struct timespec start, end;

    for (int pos = 0; pos < prompt + new_tokens - 1; pos++) {
        if (pos == prompt - 1) clock_gettime(CLOCK_MONOTONIC, &start);
        if (pos < prompt) token = atoi(argv[3 + pos]);
        if (token < 0 || token >= m.vocab) fail("a prompt token is outside the vocabulary");
        memcpy(x, m.embed + (size_t)token * h, h * 4);
        for (int i = 0; i < d / 2; i++) {
            float angle = (float)pos * inv_freq[i];
            cos_p[i] = cos_p[i + d / 2] = cosf(angle);
            sin_p[i] = sin_p[i + d / 2] = sinf(angle);
        }
        for (int li = 0; li < m.layers; li++) {
            Layer *l = &m.layer[li];
            float *k = keys + ((size_t)li * m.positions + pos) * kvn;
            float *v = values + ((size_t)li * m.positions + pos) * kvn;
            rms_norm(xb, x, l->input_norm, h, m.eps);
            bit_linear(q, xb, &l->q, codes);
            bit_linear(k, xb, &l->k, codes);
            bit_linear(v, xb, &l->v, codes);
            rope(q, m.heads, d, cos_p, sin_p);
            rope(k, m.kv_heads, d, cos_p, sin_p);
            for (int hd = 0; hd < m.heads; hd++) {
                int kh = hd / group;
                float peak = -INFINITY, sum = 0.0f;
                for (int t = 0; t <= pos; t++) {
                    const float *kt = keys + ((size_t)li * m.positions + t) * kvn + kh * d;
                    float s = 0.0f;
                    for (int i = 0; i < d; i++) s += q[hd * d + i] * kt[i];
                    scores[t] = s * attn_scale;
                    peak = fmaxf(peak, scores[t]);
                }
                for (int t = 0; t <= pos; t++) { scores[t] = expf(scores[t] - peak); sum += scores[t]; }
                float *o = att + hd * d;
                memset(o, 0, d * 4);
                for (int t = 0; t <= pos; t++) {
                    const float *vt = values + ((size_t)li * m.positions + t) * kvn + kh * d;
                    float p = scores[t] / sum;
                    for (int i = 0; i < d; i++) o[i] += p * vt[i];
                }
            }
            rms_norm(xb, att, l->attn_sub_norm, qn, m.eps);
            bit_linear(out, xb, &l->o, codes);
            for (int i = 0; i < h; i++) x[i] += out[i];
            rms_norm(xb, x, l->post_norm, h, m.eps);
            bit_linear(gate, xb, &l->gate, codes);
            bit_linear(up, xb, &l->up, codes);
            for (int i = 0; i < m.inter; i++) {
                float g = gate[i];
                g = m.silu ? g / (1.0f + expf(-g)) : (g > 0.0f ? g * g : 0.0f);
                gate[i] = g * up[i];
            }
            rms_norm(xb, gate, l->ffn_sub_norm, m.inter, m.eps);
            bit_linear(out, xb, &l->down, codes);
            for (int i = 0; i < h; i++) x[i] += out[i];
        }
        if (pos < prompt - 1) continue;        /* inside the prompt: no token to choose */
        rms_norm(xb, x, m.norm, h, m.eps);
        int best = 0;
        for (int t = 0; t < m.vocab; t++) {
            const float *row = m.lm_head + (size_t)t * h;
            float s = 0.0f;
            for (int i = 0; i < h; i++) s += xb[i] * row[i];
            logits[t] = s;
            if (s > logits[best]) best = t;
        }
        token = best;
        printf("%d%c", token, pos == prompt + new_tokens - 2 ? '\n' : ' ');
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.9f\n", (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec));
    return 0;
}
