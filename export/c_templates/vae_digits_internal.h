/* vae_digits: what the generated vae_digits_model.c provides and the kernels it calls (not the API). */
#ifndef VAE_DIGITS_INTERNAL_H
#define VAE_DIGITS_INTERNAL_H

#include <stdint.h>

#define VD_MAX_TAPS 64 /* filter_h * filter_w of a convolution, at most */

/* A requantization as TensorFlow Lite Micro does it: one multiplier and shift per output channel. */
struct vd_requant {
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
};

/* A convolution or transposed convolution (NHWC input and output, OHWI weights). */
struct vd_conv {
    int in_h, in_w, in_c, out_h, out_w, out_c;
    int filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t input_offset;
    const int8_t *weights;
    const int32_t *bias; /* NULL: none */
    struct vd_requant requant;
};

struct vd_model {
    int latent_dim;
    int num_labels;
    const char *const *labels;
    double default_temperature;
    double max_temperature;
    const char *source_sha256;
    const char *model_sha256;
    uint32_t static_bytes;
    float z_scale;
    int32_t z_zero_point;
    float label_scale;
    int32_t label_zero_point;
    float output_scale;
    int32_t output_zero_point;
    int8_t *z_input;          /* the network's inputs and output, inside its activation buffer */
    int8_t *label_input;      /* NULL for a plain VAE */
    const int8_t *output;
    int components;           /* mixture components per label; 0: no prior, z = temperature * n */
    const float *weights;     /* [max(num_labels, 1)][components] */
    const float *means;       /* [max(num_labels, 1)][components][latent_dim] */
    const float *cholesky;    /* [...][components][latent_dim * (latent_dim + 1) / 2], rows packed */
    float *latent;            /* latent_dim floats of scratch */
    double *normals;          /* latent_dim doubles of scratch */
    void (*run)(void);
};

extern const struct vd_model vd_model;

void vd_fully_connected(const int8_t *input, int32_t input_offset, int depth, const int8_t *weights,
                        const int32_t *bias, int units, const struct vd_requant *requant, int8_t *output);
void vd_transpose_conv(const struct vd_conv *conv, const int8_t *input, int8_t *output);
void vd_conv2d(const struct vd_conv *conv, const int8_t *input, int8_t *output);
void vd_logistic(const int8_t *input, int count, int32_t zero_point, int32_t radius, int32_t multiplier,
                 int shift, int8_t *output);
void vd_requantize(const int8_t *input, int count, int32_t input_zero_point, int32_t multiplier, int shift,
                   int32_t output_zero_point, int8_t *output);
void vd_resize_nearest(const int8_t *input, int in_w, int depth, const uint8_t *rows, const uint8_t *cols,
                       int out_h, int out_w, int8_t *output);
void vd_copy(int8_t *destination, const int8_t *source, int count);

#endif
