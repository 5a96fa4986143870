# Rova's accelerator probe ROM (64 KiB BIOS image). The reset vector jumps to
# `start` at the ROM's first byte (physical 0xF0000). It prints 'R' on COM1
# in real mode, enters 32-bit protected mode ('P'), builds identity page
# tables for the first 2 MiB at 0x1000, enters 64-bit long mode and prints
# "K\n", then halts: what every x86-64 kernel does first.
    .code16
    .globl start
start:
    cli
    movw $0x3f8, %dx
    movb $'R', %al
    outb %al, %dx
    movw $0xf000, %ax
    movw %ax, %ds
    lgdtl gdt_ptr
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(0xF0000 + pm32)

    .code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x3f8, %dx
    movb $'P', %al
    outb %al, %dx
    cld
    movl $0x1000, %edi
    xorl %eax, %eax
    movl $0xC00, %ecx
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x83, 0x3000
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0x1000, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmp $0x18, $(0xF0000 + lm64)

    .code64
lm64:
    movw $0x3f8, %dx
    movb $'K', %al
    outb %al, %dx
    movb $0x0a, %al
    outb %al, %dx
1:  hlt
    jmp 1b

    .balign 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .long 0xF0000 + gdt
