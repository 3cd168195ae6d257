/* The API's checks, built with -fsanitize=address,undefined by `make test`: bad arguments return their
 * error code (never undefined behaviour), and the same arguments give the same digit. */
#include "vae_digits.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

static void check(int condition, const char *what)
{
    printf("%s %s\n", condition ? "ok  " : "FAIL", what);
    failures += !condition;
}

int main(void)
{
    struct vae_digits_info info;
    uint8_t image[VAE_DIGITS_PIXELS], again[VAE_DIGITS_PIXELS];
    float latent[256];
    int8_t quantized[256], output[VAE_DIGITS_PIXELS];
    const int label = 0;
    int good;
    check(vae_digits_info(NULL) == VAE_DIGITS_NULL_POINTER, "info(NULL)");
    check(vae_digits_info(&info) == VAE_DIGITS_OK && info.latent_dim > 0 && info.latent_dim <= 256, "info");
    good = info.num_labels > 0 ? label : VAE_DIGITS_NO_LABEL;
    check(vae_digits_generate(good, 0, 0, info.default_temperature, NULL) == VAE_DIGITS_NULL_POINTER,
          "generate(image NULL)");
    check(vae_digits_generate(info.num_labels, 0, 0, 1.0, image) == VAE_DIGITS_BAD_LABEL, "label = num_labels");
    check(vae_digits_generate(-2, 0, 0, 1.0, image) == VAE_DIGITS_BAD_LABEL, "label -2");
    check(vae_digits_generate(good, 0, 0, 0.0, image) == VAE_DIGITS_BAD_TEMPERATURE, "temperature 0");
    check(vae_digits_generate(good, 0, 0, -1.0, image) == VAE_DIGITS_BAD_TEMPERATURE, "temperature -1");
    check(vae_digits_generate(good, 0, 0, nan(""), image) == VAE_DIGITS_BAD_TEMPERATURE, "temperature NaN");
    check(vae_digits_generate(good, 0, 0, info.max_temperature * 1.001, image) == VAE_DIGITS_BAD_TEMPERATURE,
          "temperature above the limit");
    check(vae_digits_generate(good, 0, 0, INFINITY, image) == VAE_DIGITS_BAD_TEMPERATURE, "temperature inf");
    check(vae_digits_sample(good, 0, 0, 1.0, NULL) == VAE_DIGITS_NULL_POINTER, "sample(latent NULL)");
    check(vae_digits_decode(NULL, good, image) == VAE_DIGITS_NULL_POINTER, "decode(latent NULL)");
    check(vae_digits_decode_int8(NULL, good, output) == VAE_DIGITS_NULL_POINTER, "decode_int8(NULL)");
    check(vae_digits_sample(good, 42, 3, info.max_temperature, latent) == VAE_DIGITS_OK, "temperature at the limit");
    latent[0] = nanf("");
    check(vae_digits_decode(latent, good, image) == VAE_DIGITS_BAD_LATENT, "decode(NaN latent)");
    latent[0] = 1e30f; /* quantizes to the int8 limit */
    check(vae_digits_decode(latent, good, image) == VAE_DIGITS_OK, "decode(huge latent)");
    memset(quantized, 0, sizeof quantized);
    check(vae_digits_decode_int8(quantized, good, output) == VAE_DIGITS_OK, "decode_int8");
    check(vae_digits_generate(good, 7, 1, info.default_temperature, image) == VAE_DIGITS_OK &&
              vae_digits_generate(good, 7, 1, info.default_temperature, again) == VAE_DIGITS_OK &&
              memcmp(image, again, sizeof image) == 0,
          "same seed, same digit");
    check(vae_digits_generate(good, 8, 1, info.default_temperature, again) == VAE_DIGITS_OK &&
              memcmp(image, again, sizeof image) != 0,
          "another seed, another digit");
    check(vae_digits_sample(good, 7, 1, info.default_temperature, latent) == VAE_DIGITS_OK &&
              vae_digits_decode(latent, good, again) == VAE_DIGITS_OK && memcmp(image, again, sizeof image) == 0,
          "generate = decode(sample)");
    check(vae_digits_generate(good, 18446744073709551615ull, 4294967295u, 1.0, image) == VAE_DIGITS_OK,
          "the largest seed and index");
    printf("%d failed\n", failures);
    return failures != 0;
}
