/* vae_digits: the int8 kernels (TensorFlow Lite Micro's arithmetic, bit for bit), the portable seeded
 * stream and the API. The network and its weights are in the generated vae_digits_model.c. */
#include "vae_digits.h"
#include "vae_digits_internal.h"

#include <math.h>
#include <stddef.h>

#define VD_PI 3.141592653589793

/* ---- fixed-point arithmetic (gemmlowp's, as TensorFlow Lite Micro uses it) ---- */

/* Wrap-around int32 addition and subtraction: the reference code relies on them and C leaves signed
 * overflow undefined. */
static int32_t vd_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t vd_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

static int32_t vd_high_mul(int32_t a, int32_t b) /* SaturatingRoundingDoublingHighMul */
{
    int64_t product;
    int32_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    product = (int64_t)a * (int64_t)b;
    nudge = product >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((product + nudge) / ((int64_t)1 << 31));
}

static int32_t vd_divide_by_pot(int32_t x, int exponent) /* RoundingDivideByPOT */
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t vd_multiply_by_pot(int32_t x, int exponent) /* SaturatingRoundingMultiplyByPOT, > 0 */
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t vd_multiply(int32_t x, int32_t multiplier, int shift) /* MultiplyByQuantizedMultiplier */
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return vd_divide_by_pot(vd_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

static int8_t vd_clamp(int32_t value, int32_t low, int32_t high)
{
    return (int8_t)(value < low ? low : value > high ? high : value);
}

static int8_t vd_output(int32_t acc, const struct vd_requant *requant, int channel)
{
    const int32_t scaled = vd_multiply(acc, requant->multiplier[channel], requant->shift[channel]);
    return vd_clamp(scaled + requant->output_offset, requant->act_min, requant->act_max);
}

/* ---- kernels ---- */

void vd_fully_connected(const int8_t *input, int32_t input_offset, int depth, const int8_t *weights,
                        const int32_t *bias, int units, const struct vd_requant *requant, int8_t *output)
{
    int unit, d;
    for (unit = 0; unit < units; ++unit) {
        const int8_t *row = weights + (long)unit * depth;
        int32_t acc = 0;
        for (d = 0; d < depth; ++d) {
            acc += (int32_t)row[d] * ((int32_t)input[d] + input_offset);
        }
        if (bias != NULL) {
            acc += bias[unit];
        }
        output[unit] = vd_output(acc, requant, unit);
    }
}

static int32_t vd_dot(const int8_t *input, const int8_t *weights, int count, int32_t input_offset)
{
    int32_t acc = 0;
    int i;
    for (i = 0; i < count; ++i) {
        acc += ((int32_t)input[i] + input_offset) * (int32_t)weights[i];
    }
    return acc;
}

/* Four output channels at once (weights `stride` apart): each input value is loaded once for four
 * products. The integer sums are the same as one channel at a time. */
static void vd_dot4(const int8_t *input, const int8_t *weights, long stride, int count, int32_t input_offset,
                    int32_t acc[4])
{
    const int8_t *w0 = weights, *w1 = weights + stride, *w2 = weights + 2 * stride, *w3 = weights + 3 * stride;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int i;
    for (i = 0; i < count; ++i) {
        const int32_t x = (int32_t)input[i] + input_offset;
        a0 += x * w0[i];
        a1 += x * w1[i];
        a2 += x * w2[i];
        a3 += x * w3[i];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The input pixels (with their filter taps) that contribute to one output position. */
struct vd_taps {
    int count;
    const int8_t *pixel[VD_MAX_TAPS];
    int tap[VD_MAX_TAPS]; /* fy * filter_w + fx */
};

static void vd_transpose_taps(const struct vd_conv *c, const int8_t *input, int oy, int ox, struct vd_taps *taps)
{
    int fy, fx;
    taps->count = 0;
    for (fy = 0; fy < c->filter_h; ++fy) {
        const int ty = oy + c->pad_h - fy;
        if (ty < 0 || ty % c->stride_h != 0 || ty / c->stride_h >= c->in_h) {
            continue;
        }
        for (fx = 0; fx < c->filter_w; ++fx) {
            const int tx = ox + c->pad_w - fx;
            if (tx < 0 || tx % c->stride_w != 0 || tx / c->stride_w >= c->in_w) {
                continue;
            }
            taps->pixel[taps->count] = input + ((long)(ty / c->stride_h) * c->in_w + tx / c->stride_w) * c->in_c;
            taps->tap[taps->count++] = fy * c->filter_w + fx;
        }
    }
}

static void vd_conv_taps(const struct vd_conv *c, const int8_t *input, int oy, int ox, struct vd_taps *taps)
{
    int fy, fx;
    taps->count = 0;
    for (fy = 0; fy < c->filter_h; ++fy) {
        const int iy = oy * c->stride_h - c->pad_h + c->dilation_h * fy;
        if (iy < 0 || iy >= c->in_h) {
            continue;
        }
        for (fx = 0; fx < c->filter_w; ++fx) {
            const int ix = ox * c->stride_w - c->pad_w + c->dilation_w * fx;
            if (ix < 0 || ix >= c->in_w) {
                continue;
            }
            taps->pixel[taps->count] = input + ((long)iy * c->in_w + ix) * c->in_c;
            taps->tap[taps->count++] = fy * c->filter_w + fx;
        }
    }
}

/* One output position: every channel's sum over the taps, requantized. */
static void vd_convolve_position(const struct vd_conv *c, const struct vd_taps *taps, int8_t *output)
{
    const long per_channel = (long)c->filter_h * c->filter_w * c->in_c;
    int oc = 0, t, k;
    for (; oc + 4 <= c->out_c; oc += 4) {
        int32_t acc[4] = {0, 0, 0, 0};
        for (t = 0; t < taps->count; ++t) {
            vd_dot4(taps->pixel[t], c->weights + oc * per_channel + (long)taps->tap[t] * c->in_c, per_channel,
                    c->in_c, c->input_offset, acc);
        }
        for (k = 0; k < 4; ++k) {
            output[oc + k] = vd_output(acc[k] + (c->bias != NULL ? c->bias[oc + k] : 0), &c->requant, oc + k);
        }
    }
    for (; oc < c->out_c; ++oc) {
        int32_t acc = 0;
        for (t = 0; t < taps->count; ++t) {
            acc += vd_dot(taps->pixel[t], c->weights + oc * per_channel + (long)taps->tap[t] * c->in_c, c->in_c,
                          c->input_offset);
        }
        output[oc] = vd_output(acc + (c->bias != NULL ? c->bias[oc] : 0), &c->requant, oc);
    }
}

/* Each output sums the inputs that TFLM's scatter loop adds into it: the same integers, gathered, with
 * no int32 buffer of the whole output. (One loop per kind, not a shared one with a tap finder: that
 * costs the Cortex-M4 6 % more instructions with GCC 12.) */
void vd_transpose_conv(const struct vd_conv *c, const int8_t *input, int8_t *output)
{
    struct vd_taps taps;
    int oy, ox;
    for (oy = 0; oy < c->out_h; ++oy) {
        for (ox = 0; ox < c->out_w; ++ox) {
            vd_transpose_taps(c, input, oy, ox, &taps);
            vd_convolve_position(c, &taps, output);
            output += c->out_c;
        }
    }
}

void vd_conv2d(const struct vd_conv *c, const int8_t *input, int8_t *output)
{
    struct vd_taps taps;
    int oy, ox;
    for (oy = 0; oy < c->out_h; ++oy) {
        for (ox = 0; ox < c->out_w; ++ox) {
            vd_conv_taps(c, input, oy, ox, &taps);
            vd_convolve_position(c, &taps, output);
            output += c->out_c;
        }
    }
}

void vd_resize_nearest(const int8_t *input, int in_w, int depth, const uint8_t *rows, const uint8_t *cols,
                       int out_h, int out_w, int8_t *output)
{
    int y, x;
    for (y = 0; y < out_h; ++y) {
        for (x = 0; x < out_w; ++x) {
            vd_copy(output, input + ((long)rows[y] * in_w + cols[x]) * depth, depth);
            output += depth;
        }
    }
}

void vd_requantize(const int8_t *input, int count, int32_t input_zero_point, int32_t multiplier, int shift,
                   int32_t output_zero_point, int8_t *output)
{
    int i;
    for (i = 0; i < count; ++i) {
        const int32_t scaled = vd_multiply((int32_t)input[i] - input_zero_point, multiplier, shift);
        output[i] = vd_clamp(scaled + output_zero_point, -128, 127);
    }
}

void vd_copy(int8_t *destination, const int8_t *source, int count)
{
    int i;
    for (i = 0; i < count; ++i) {
        destination[i] = source[i];
    }
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp's Taylor expansion around -1/8). */
static int32_t vd_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = vd_add(a, 1 << 28);
    const int32_t x2 = vd_high_mul(x, x);
    const int32_t x3 = vd_high_mul(x2, x);
    const int32_t x4 = vd_high_mul(x2, x2);
    const int32_t x4_over_4 = vd_divide_by_pot(x4, 2);
    const int32_t tail = vd_divide_by_pot(vd_add(vd_high_mul(vd_add(x4_over_4, x3), one_third), x2), 1);
    return vd_add(constant_term, vd_high_mul(constant_term, vd_add(x, tail)));
}

/* exp(a) for a <= 0 in Q4.27, result in Q0.31. */
static int32_t vd_exp_negative(int32_t a)
{
    static const int32_t multipliers[6] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401};
    const int32_t quarter = 1 << 25;
    const int32_t a_mod_quarter_minus_quarter = vd_sub(a & (quarter - 1), quarter);
    const int32_t remainder = vd_sub(a_mod_quarter_minus_quarter, a);
    int32_t result = vd_exp_quarter(vd_multiply_by_pot(a_mod_quarter_minus_quarter, 4));
    int bit;
    for (bit = 0; bit < 6; ++bit) { /* exp(-1/4), exp(-1/2), ..., exp(-8) */
        if (remainder & ((int32_t)1 << (25 + bit))) {
            result = vd_high_mul(result, multipliers[bit]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in (0, 1), Q0.31: Newton-Raphson division. */
static int32_t vd_one_over_one_plus(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = vd_add(1515870810, vd_high_mul(half_denominator, -1010580540)); /* 48/17 - 32/17 d */
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = vd_sub(1 << 29, vd_high_mul(half_denominator, x));
        x = vd_add(x, vd_multiply_by_pot(vd_high_mul(x, one_minus), 2));
    }
    return vd_multiply_by_pot(x, 1);
}

/* logistic(a) for a in Q4.27, result in Q0.31. */
static int32_t vd_logistic_q4(int32_t a)
{
    const int32_t magnitude = a > 0 ? a : vd_sub(0, a);
    const int32_t positive = vd_one_over_one_plus(vd_exp_negative(vd_sub(0, magnitude)));
    if (a == 0) {
        return 1 << 30;
    }
    return a > 0 ? positive : vd_sub(INT32_MAX, positive);
}

void vd_logistic(const int8_t *input, int count, int32_t zero_point, int32_t radius, int32_t multiplier,
                 int shift, int8_t *output)
{
    int i;
    for (i = 0; i < count; ++i) {
        const int32_t value = (int32_t)input[i] - zero_point;
        if (value <= -radius) {
            output[i] = -128;
        } else if (value >= radius) {
            output[i] = 127;
        } else {
            const int32_t q0 = vd_logistic_q4(vd_multiply(value, multiplier, shift));
            output[i] = vd_clamp(vd_divide_by_pot(q0, 23) - 128, -128, 127);
        }
    }
}

/* ---- the portable seeded stream (vae_runtime.stream, version 1) ---- */

static void vd_philox(uint32_t counter[4], uint64_t seed)
{
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    int round;
    for (round = 0; round < 10; ++round) {
        const uint64_t p0 = (uint64_t)counter[0] * 0xD2511F53u;
        const uint64_t p1 = (uint64_t)counter[2] * 0xCD9E8D57u;
        const uint32_t c1 = counter[1], c3 = counter[3];
        counter[0] = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        counter[1] = (uint32_t)p1;
        counter[2] = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        counter[3] = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

static void vd_block(uint64_t seed, uint32_t index, uint32_t block, uint32_t words[4])
{
    words[0] = block;
    words[1] = index;
    words[2] = 0;
    words[3] = 0;
    vd_philox(words, seed);
}

static double vd_uniform(uint32_t word)
{
    return ((double)(word >> 8) + 0.5) * (1.0 / 16777216.0);
}

static double vd_normal(uint64_t seed, uint32_t index, int j)
{
    uint32_t words[4];
    const int pair = (j % 4) / 2;
    double radius, angle;
    vd_block(seed, index, 1u + (uint32_t)(j / 4), words);
    radius = sqrt(-2.0 * log(vd_uniform(words[2 * pair])));
    angle = 2.0 * VD_PI * vd_uniform(words[2 * pair + 1]);
    return j % 2 == 0 ? radius * cos(angle) : radius * sin(angle);
}

static int vd_component(const float *weights, int components, double u)
{
    double cumulative = 0.0;
    int k, chosen = 0;
    for (k = 0; k < components; ++k) {
        cumulative += (double)weights[k];
        chosen += cumulative <= u;
    }
    return chosen < components ? chosen : components - 1;
}

/* ---- the API ---- */

static int vd_check_label(int label)
{
    if (vd_model.num_labels == 0) {
        return label == VAE_DIGITS_NO_LABEL ? VAE_DIGITS_OK : VAE_DIGITS_BAD_LABEL;
    }
    return label >= 0 && label < vd_model.num_labels ? VAE_DIGITS_OK : VAE_DIGITS_BAD_LABEL;
}

int vae_digits_info(struct vae_digits_info *info)
{
    if (info == NULL) {
        return VAE_DIGITS_NULL_POINTER;
    }
    info->latent_dim = vd_model.latent_dim;
    info->num_labels = vd_model.num_labels;
    info->labels = vd_model.labels;
    info->default_temperature = vd_model.default_temperature;
    info->max_temperature = vd_model.max_temperature;
    info->source_sha256 = vd_model.source_sha256;
    info->model_sha256 = vd_model.model_sha256;
    info->static_bytes = vd_model.static_bytes;
    return VAE_DIGITS_OK;
}

int vae_digits_sample(int label, uint64_t seed, uint32_t index, double temperature, float *latent)
{
    const int d = vd_model.latent_dim;
    const int mixture = label > 0 ? label : 0;
    const int status = vd_check_label(label);
    double *normals = vd_model.normals;
    int i, j, k = 0;
    if (latent == NULL) {
        return VAE_DIGITS_NULL_POINTER;
    }
    if (status != VAE_DIGITS_OK) {
        return status;
    }
    if (!(temperature > 0.0 && temperature <= vd_model.max_temperature)) { /* NaN fails too */
        return VAE_DIGITS_BAD_TEMPERATURE;
    }
    for (j = 0; j < d; ++j) {
        normals[j] = vd_normal(seed, index, j);
    }
    if (vd_model.components == 0) {
        for (j = 0; j < d; ++j) {
            latent[j] = (float)(temperature * normals[j]);
        }
        return VAE_DIGITS_OK;
    }
    {
        uint32_t words[4];
        vd_block(seed, index, 0u, words);
        k = vd_component(vd_model.weights + mixture * vd_model.components, vd_model.components,
                         vd_uniform(words[0]));
    }
    {
        const long component = (long)mixture * vd_model.components + k;
        const float *mean = vd_model.means + component * d;
        const float *factor = vd_model.cholesky + component * (d * (d + 1) / 2);
        for (i = 0; i < d; ++i) {
            double spread = 0.0;
            for (j = 0; j <= i; ++j) {
                spread += (double)factor[i * (i + 1) / 2 + j] * normals[j];
            }
            latent[i] = (float)((double)mean[i] + temperature * spread);
        }
    }
    return VAE_DIGITS_OK;
}

static int8_t vd_quantize(float value, float scale, int32_t zero_point)
{
    const float scaled = roundf(value / scale);
    const float low = (float)(-128 - zero_point), high = (float)(127 - zero_point);
    return (int8_t)((int32_t)(scaled < low ? low : scaled > high ? high : scaled) + zero_point);
}

static void vd_set_label(int label)
{
    int i;
    for (i = 0; i < vd_model.num_labels; ++i) {
        vd_model.label_input[i] =
            vd_quantize(i == label ? 1.0f : 0.0f, vd_model.label_scale, vd_model.label_zero_point);
    }
}

int vae_digits_decode_int8(const int8_t *latent, int label, int8_t output[VAE_DIGITS_PIXELS])
{
    const int status = vd_check_label(label);
    if (latent == NULL || output == NULL) {
        return VAE_DIGITS_NULL_POINTER;
    }
    if (status != VAE_DIGITS_OK) {
        return status;
    }
    vd_copy(vd_model.z_input, latent, vd_model.latent_dim);
    vd_set_label(label);
    vd_model.run();
    vd_copy(output, vd_model.output, VAE_DIGITS_PIXELS);
    return VAE_DIGITS_OK;
}

int vae_digits_decode(const float *latent, int label, uint8_t image[VAE_DIGITS_PIXELS])
{
    const int status = vd_check_label(label);
    int i;
    if (latent == NULL || image == NULL) {
        return VAE_DIGITS_NULL_POINTER;
    }
    if (status != VAE_DIGITS_OK) {
        return status;
    }
    for (i = 0; i < vd_model.latent_dim; ++i) {
        if (!isfinite(latent[i])) {
            return VAE_DIGITS_BAD_LATENT;
        }
        vd_model.z_input[i] = vd_quantize(latent[i], vd_model.z_scale, vd_model.z_zero_point);
    }
    vd_set_label(label);
    vd_model.run();
    for (i = 0; i < VAE_DIGITS_PIXELS; ++i) {
        const float grey = rintf((float)((int32_t)vd_model.output[i] - vd_model.output_zero_point) *
                                 vd_model.output_scale * 255.0f);
        image[i] = (uint8_t)(grey < 0.0f ? 0.0f : grey > 255.0f ? 255.0f : grey);
    }
    return VAE_DIGITS_OK;
}

int vae_digits_generate(int label, uint64_t seed, uint32_t index, double temperature,
                        uint8_t image[VAE_DIGITS_PIXELS])
{
    int status;
    if (image == NULL) {
        return VAE_DIGITS_NULL_POINTER;
    }
    status = vae_digits_sample(label, seed, index, temperature, vd_model.latent);
    return status != VAE_DIGITS_OK ? status : vae_digits_decode(vd_model.latent, label, image);
}
