/* Startup for the Cortex-M4F of qemu-system-arm -M mps2-an386: the vector table, .data and .bss, the
 * FPU, a painted stack (for its high-water mark) and a SysTick tick counter. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_start, __data_end, __data_load, __bss_start__, __bss_end__;
extern uint32_t __stack_limit, __stack_top;
extern int main(void);

#define STACK_PAINT 0x5AC3A55Cu
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYSTICK_RELOAD 0xFFFFFFu

static volatile uint32_t vd_systick_wraps;

void vd_reset(void);
uint64_t vd_ticks(void);
uint32_t vd_stack_used(void);

static void vd_halt(void)
{
    for (;;) {
    }
}

static void vd_systick(void) { ++vd_systick_wraps; }

__attribute__((section(".vectors"), used)) static void (*const vd_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top, vd_reset, vd_halt, vd_halt, vd_halt, vd_halt, vd_halt, 0, 0, 0, 0,
    vd_halt, vd_halt, 0, vd_halt, vd_systick,
};

/* Paint the stack below the caller's frame, so that vd_stack_used can find how deep it went. */
__attribute__((noinline)) static void vd_paint_stack(void)
{
    uint32_t *word = &__stack_limit;
    uint32_t *below_frame = (uint32_t *)__builtin_frame_address(0) - 16;
    while (word < below_frame) {
        *word++ = STACK_PAINT;
    }
}

void vd_reset(void)
{
    uint32_t *source = &__data_load, *destination = &__data_start;
    while (destination < &__data_end) {
        *destination++ = *source++;
    }
    for (destination = &__bss_start__; destination < &__bss_end__; ++destination) {
        *destination = 0;
    }
    CPACR |= 0xFu << 20; /* CP10 and CP11: the FPU */
    __asm volatile("dsb\n isb");
    vd_paint_stack();
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7; /* the processor clock, the wrap interrupt, enabled */
    exit(main());
}

/* SysTick ticks since reset (QEMU counts them from its virtual clock: with -icount, from instructions). */
uint64_t vd_ticks(void)
{
    uint32_t wraps, value;
    do {
        wraps = vd_systick_wraps;
        value = SYST_CVR;
    } while (wraps != vd_systick_wraps);
    return (uint64_t)wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
}

/* The deepest the stack has been, in bytes: the first word from its limit whose paint is gone. */
uint32_t vd_stack_used(void)
{
    const uint32_t *word = &__stack_limit;
    while (word < &__stack_top && *word == STACK_PAINT) {
        ++word;
    }
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)word);
}
