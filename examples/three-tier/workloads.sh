#!/bin/sh
# The workloads of the three-tier walkthrough (docs/lab.md), started as a
# kubelet would start pods: a Kubernetes namespace, a pod name and labels.
# Each workload runs a small HTTP/TCP/UDP echo server on port 80.
#
# `calico-lab up --example three-tier` runs these same lines (on a lab with
# fewer than three hosts, host-N wraps around). For a lab not named "lab",
# run it as: CALICO_LAB_NAME=NAME sh examples/three-tier/workloads.sh
set -e
calico-lab add-workload frontend --namespace shop --host host-1 --labels app=frontend,tier=web
calico-lab add-workload backend --namespace shop --host host-2 --labels app=backend,tier=api
calico-lab add-workload database --namespace shop --host host-3 --labels app=database,tier=db
calico-lab add-workload client --namespace client --host host-2 --labels app=client
