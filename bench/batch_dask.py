"""bench/batch.sh's Dask part: prints the wall seconds of fwassemble.batch.run over INPUT on a
LocalCluster of WORKERS worker processes (timed from a running cluster).
usage: python bench/batch_dask.py INPUT OUTDIR WORKERS"""
import sys
import time

if __name__ == "__main__":
    from dask.distributed import Client

    import fwassemble.batch as batch

    cluster = batch.local_cluster(int(sys.argv[3]))
    client = Client(cluster)
    start = time.time()
    batch.run([sys.argv[1]], sys.argv[2], client=client)
    print("%.2f" % (time.time() - start))
    client.close()
    cluster.close()
