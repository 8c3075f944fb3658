/* test_rwsem.c - placeholder. */
#include "clients_util.h"
int main(void){return 0;}
