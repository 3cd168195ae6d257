/* Firmware for qemu-system-arm -M mps2-an386: one digit per label (seed 0, digit index = label, the
 * bundle's default temperature), printed over semihosting as hex grey levels with the SysTick ticks
 * each took, then a calibration loop of a known instruction count and the stack's high-water mark. */
#include "vae_digits.h"

#include <stdio.h>

#define SEED 0u
#define CALIBRATION_LOOPS 1000000u

extern void initialise_monitor_handles(void);
extern uint64_t vd_ticks(void);
extern uint32_t vd_stack_used(void);

/* Two instructions a turn (subs, bne): 2 * CALIBRATION_LOOPS instructions. */
static void vd_spin(uint32_t turns)
{
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(turns) : : "cc");
}

static void print_digit(int label, uint64_t ticks, const uint8_t *image)
{
    static const char hex[] = "0123456789abcdef";
    static char line[2 * VAE_DIGITS_PIXELS + 1];
    int i;
    for (i = 0; i < VAE_DIGITS_PIXELS; ++i) {
        line[2 * i] = hex[image[i] >> 4];
        line[2 * i + 1] = hex[image[i] & 15];
    }
    line[2 * VAE_DIGITS_PIXELS] = '\0';
    printf("digit %d ticks %lu image %s\n", label, (unsigned long)ticks, line);
}

int main(void)
{
    struct vae_digits_info info;
    uint8_t image[VAE_DIGITS_PIXELS];
    uint64_t start;
    int label, count;
    initialise_monitor_handles();
    vae_digits_info(&info);
    printf("vae_digits model %s static_bytes %lu\n", info.model_sha256, (unsigned long)info.static_bytes);
    count = info.num_labels > 0 ? info.num_labels : 1;
    for (label = 0; label < count; ++label) {
        int status;
        start = vd_ticks();
        status = vae_digits_generate(info.num_labels > 0 ? label : VAE_DIGITS_NO_LABEL, SEED, (uint32_t)label,
                                     info.default_temperature, image);
        if (status != VAE_DIGITS_OK) {
            printf("error %d\n", status);
            return 1;
        }
        print_digit(label, vd_ticks() - start, image);
    }
    start = vd_ticks();
    vd_spin(CALIBRATION_LOOPS);
    printf("calibration instructions %lu ticks %lu\n", 2ul * CALIBRATION_LOOPS, (unsigned long)(vd_ticks() - start));
    printf("stack_used %lu\n", (unsigned long)vd_stack_used());
    return 0;
}
