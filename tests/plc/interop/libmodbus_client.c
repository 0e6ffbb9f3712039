/* An independent Modbus TCP client (libmodbus) for the sortline register map.
 * Usage: libmodbus_client HOST PORT ON_TICK
 * Prints KEY=VALUE lines; exit 0 when every request got the expected kind
 * of reply (data or exception), 1 otherwise. Built by tests/plc/test_interop.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <modbus.h>

static int fail(const char *what) {
    printf("FAIL=%s: %s\n", what, modbus_strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT ON_TICK\n", argv[0]);
        return 2;
    }
    unsigned long on = strtoul(argv[3], NULL, 10), off = on + 100;
    modbus_t *ctx = modbus_new_tcp(argv[1], atoi(argv[2]));
    if (ctx == NULL || modbus_set_slave(ctx, 1) != 0 || modbus_connect(ctx) != 0)
        return fail("connect");
    modbus_set_response_timeout(ctx, 2, 0);

    uint16_t ir[4];
    if (modbus_read_input_registers(ctx, 0, 4, ir) != 4) return fail("read IR 0-3");
    printf("ENCODER=%lu\nSPEED=%u\nSTATE=%u\n",
           ((unsigned long)ir[0] << 16) | ir[1], ir[2], ir[3]);

    if (modbus_write_register(ctx, 0, 4242) != 1) return fail("write HR 0");
    uint16_t hb;
    if (modbus_read_registers(ctx, 0, 1, &hb) != 1) return fail("read HR 0");
    printf("HEARTBEAT=%u\n", hb);

    /* one pulse record, seq 1 in ring slot 1 (HR 208), ack block read back (FC 23) */
    uint16_t rec[8] = {1, 0, 10, 12, (uint16_t)(on >> 16), (uint16_t)(on & 0xFFFF),
                       (uint16_t)(off >> 16), (uint16_t)(off & 0xFFFF)};
    uint16_t ack[36];
    if (modbus_write_and_read_registers(ctx, 208, 8, rec, 100, 36, ack) != 36)
        return fail("FC23 HR 208-215 / HR 100-135");
    printf("ACKED_SEQ=%u\nSLOT1_RESULT=%u\n", ack[0], ack[4 + 1]);

    /* exception replies: unmapped input register (past the status block), read-only holding register */
    if (modbus_read_input_registers(ctx, 95, 1, ir) != -1) return fail("IR 95 should fail");
    printf("IR95_ERRNO=%d\n", errno == EMBXILADD ? 2 : errno);
    if (modbus_write_register(ctx, 101, 1) != -1) return fail("HR 101 should fail");
    printf("HR101_ERRNO=%d\n", errno == EMBXILADD ? 2 : errno);
    if (modbus_write_register(ctx, 2, 99) != -1) return fail("command 99 should fail");
    printf("CMD99_ERRNO=%d\n", errno == EMBXILVAL ? 3 : errno);

    /* oversize read (126 registers), sent raw: libmodbus itself refuses to build it */
    uint8_t req[] = {0x01, 0x04, 0x00, 0x00, 0x00, 0x7E};
    uint8_t rsp[MODBUS_TCP_MAX_ADU_LENGTH];
    if (modbus_send_raw_request(ctx, req, sizeof req) == -1) return fail("raw send");
    int n = modbus_receive_confirmation(ctx, rsp);
    if (n < 9) return fail("raw reply");
    printf("OVERSIZE_REPLY=%02X %02X\n", rsp[7], rsp[8]);

    modbus_close(ctx);
    modbus_free(ctx);
    return 0;
}
