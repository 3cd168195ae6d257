/* vae-digits-c: one generated digit as a binary PGM on stdout.
 *   vae-digits-c --label 7 --seed 0 > seven.pgm     (--temperature T, --index I; --info) */
#include "vae_digits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *problem)
{
    fprintf(stderr, "vae-digits-c: %s\n", problem);
    fprintf(stderr, "usage: vae-digits-c --label L [--seed S] [--temperature T] [--index I] > digit.pgm"
                    " | vae-digits-c --info\n");
    return 2;
}

static int parse_unsigned(const char *text, unsigned long long high, unsigned long long *value)
{
    char *end;
    errno = 0;
    if (text == NULL || *text == '\0' || *text == '-') {
        return 0;
    }
    *value = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' && *value <= high;
}

static int print_info(void)
{
    struct vae_digits_info info;
    int i;
    vae_digits_info(&info);
    printf("latent_dim %d\nlabels", info.latent_dim);
    for (i = 0; i < info.num_labels; ++i) {
        printf(" %s", info.labels[i]);
    }
    printf("\ndefault_temperature %g\nmax_temperature %g\nsource_sha256 %s\nmodel_sha256 %s\n"
           "static_bytes %lu\n",
           info.default_temperature, info.max_temperature, info.source_sha256, info.model_sha256,
           (unsigned long)info.static_bytes);
    return 0;
}

int main(int argc, char **argv)
{
    struct vae_digits_info info;
    unsigned long long seed = 0, index = 0, label = 0;
    int has_label = 0, i, status;
    double temperature;
    uint8_t image[VAE_DIGITS_PIXELS];
    vae_digits_info(&info);
    temperature = info.default_temperature;
    for (i = 1; i < argc; ++i) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--info") == 0) {
            return print_info();
        } else if (strcmp(argv[i], "--label") == 0) {
            if (!parse_unsigned(value, 1000000, &label)) return usage("--label needs a label index");
            has_label = 1;
        } else if (strcmp(argv[i], "--seed") == 0) {
            if (!parse_unsigned(value, 18446744073709551615ull, &seed)) return usage("--seed needs 0 .. 2^64-1");
        } else if (strcmp(argv[i], "--index") == 0) {
            if (!parse_unsigned(value, 4294967295ull, &index)) return usage("--index needs 0 .. 2^32-1");
        } else if (strcmp(argv[i], "--temperature") == 0) {
            char *end;
            temperature = value ? strtod(value, &end) : 0.0;
            if (value == NULL || *end != '\0') return usage("--temperature needs a number");
        } else {
            return usage("unknown argument");
        }
        ++i;
    }
    if (!has_label && info.num_labels > 0) {
        return usage("--label is required");
    }
    status = vae_digits_generate(info.num_labels > 0 ? (int)label : VAE_DIGITS_NO_LABEL, seed, (uint32_t)index,
                                 temperature, image);
    if (status == VAE_DIGITS_BAD_LABEL) {
        fprintf(stderr, "vae-digits-c: --label must be 0 .. %d\n", info.num_labels - 1);
        return 2;
    }
    if (status == VAE_DIGITS_BAD_TEMPERATURE) {
        fprintf(stderr, "vae-digits-c: --temperature must be in (0, %g]\n", info.max_temperature);
        return 2;
    }
    if (status != VAE_DIGITS_OK) {
        fprintf(stderr, "vae-digits-c: error %d\n", status);
        return 1;
    }
    printf("P5\n28 28\n255\n");
    return fwrite(image, 1, VAE_DIGITS_PIXELS, stdout) == VAE_DIGITS_PIXELS && fflush(stdout) == 0 ? 0 : 1;
}
