/* The admin dashboard: every node's figures arrive on `private-realtime.stats` once a second
 * (docs/admin.md), the shop's orders on `private-admin.orders`; both signed through the admin
 * session. Nothing polls. */
(function () {
  "use strict";

  var WINDOW = 600; // points kept in the charts: ten minutes at one a second
  var STALE = 5000; // ms after which a silent node's figures no longer count
  var snapshots = new Map(); // node_id -> {at, snapshot}
  var series = { t: [], connections: [], inRate: [], outRate: [] };
  var lastPoint = 0;
  var charts = {};

  function byId(id) {
    return document.getElementById(id);
  }

  function setFigure(id, value) {
    byId(id).querySelector(".value").textContent = value;
  }

  function sum(values) {
    return values.reduce(function (total, value) {
      return total + (value || 0);
    }, 0);
  }

  // a count, or an object of counts (nested ones too: `connections_refused` by reason) added up
  function total(counts) {
    if (typeof counts === "number") return counts;
    return sum(Object.values(counts || {}).map(total));
  }

  function rows(body, cells) {
    body.replaceChildren.apply(
      body,
      cells.map(function (row) {
        var tr = document.createElement("tr");
        row.forEach(function (cell) {
          var td = document.createElement("td");
          td.textContent = cell;
          tr.appendChild(td);
        });
        return tr;
      }),
    );
  }

  function chart(id, label, names, colors) {
    var element = byId(id);
    var width = Math.max(280, element.clientWidth || 560);
    var options = {
      title: label,
      width: width,
      height: 180,
      series: [{}].concat(
        names.map(function (name, index) {
          return { label: name, stroke: colors[index], width: 2 };
        }),
      ),
      axes: [{}, { size: 50 }],
    };
    return new uPlot(options, [[]].concat(names.map(function () { return []; })), element);
  }

  function live() {
    var now = Date.now();
    var current = [];
    snapshots.forEach(function (entry, nodeId) {
      if (now - entry.at > STALE) snapshots.delete(nodeId);
      else current.push(entry.snapshot);
    });
    return current;
  }

  function render() {
    var current = live();
    if (current.length === 0) return;
    var newest = current.reduce(function (a, b) {
      return a.at >= b.at ? a : b;
    });
    var connections = newest.connections.cluster;
    var inRate = sum(current.map(function (s) { return s.messages.in_per_second; }));
    var outRate = sum(current.map(function (s) { return s.messages.out_per_second; }));
    var errors = sum(current.map(function (s) { return total(s.errors.client) + total(s.errors.api); }));
    var limited = sum(current.map(function (s) { return total(s.rate_limits); }));
    setFigure("fig-connections", connections);
    setFigure("fig-in", inRate.toFixed(1));
    setFigure("fig-out", outRate.toFixed(1));
    setFigure("fig-channels", newest.channels.occupied);
    setFigure("fig-members", newest.presence.members);
    setFigure("fig-nodes", newest.nodes.length);
    setFigure("fig-errors", errors);
    setFigure("fig-slow", sum(current.map(function (s) { return s.slow_consumers; })));
    setFigure("fig-limited", limited);
    setFigure("fig-outbox", newest.outbox ? newest.outbox.depth : "–");
    byId("updated").textContent = "updated " + new Date(newest.at * 1000).toLocaleTimeString();
    rows(byId("channels"), newest.channels.top.map(function (channel) {
      var count = channel.members === undefined ? channel.subscribers : channel.subscribers + " (" + channel.members + " members)";
      return [channel.name, channel.type, count];
    }));
    var rates = new Map(current.map(function (s) { return [s.node_id, s.messages]; }));
    rows(byId("nodes"), newest.nodes.map(function (node) {
      var rate = rates.get(node.node_id) || {};
      return [node.node_id, node.connections, node.heartbeat_age.toFixed(1) + " s ago",
        rate.in_per_second === undefined ? "–" : rate.in_per_second, rate.out_per_second === undefined ? "–" : rate.out_per_second];
    }));
    var problems = [];
    current.forEach(function (s) {
      Object.entries(s.errors.client).forEach(function (e) { problems.push([s.node_id, "client " + e[0], e[1]]); });
      Object.entries(s.errors.api).forEach(function (e) { problems.push([s.node_id, "api " + e[0], e[1]]); });
      Object.entries(s.rate_limits).forEach(function (e) { if (total(e[1])) problems.push([s.node_id, e[0].replace(/_/g, " "), total(e[1])]); });
      if (s.slow_consumers) problems.push([s.node_id, "slow consumers", s.slow_consumers]);
    });
    rows(byId("errors"), problems);
    addPoint(newest.at, connections, inRate, outRate);
  }

  function addPoint(at, connections, inRate, outRate) {
    if (at - lastPoint < 0.9) return; // one point a second, however many nodes report
    lastPoint = at;
    series.t.push(at);
    series.connections.push(connections);
    series.inRate.push(inRate);
    series.outRate.push(outRate);
    if (series.t.length > WINDOW) {
      Object.keys(series).forEach(function (key) { series[key].shift(); });
    }
    if (typeof uPlot === "function") {
      charts.connections = charts.connections || chart("chart-connections", "connections", ["connections"], ["#2155cd"]);
      charts.messages = charts.messages || chart("chart-messages", "messages / s", ["in", "out"], ["#127a45", "#b54708"]);
      charts.connections.setData([series.t, series.connections]);
      charts.messages.setData([series.t, series.inRate, series.outRate]);
    }
    byId("chart-connections").dataset.points = series.t.length;
    byId("chart-messages").dataset.points = series.t.length;
  }

  function orderLine(event, data) {
    var order = data.order || {};
    var li = document.createElement("li");
    li.dataset.orderId = order.id;
    li.textContent = new Date().toLocaleTimeString() + "  " + event + "  " + (order.number || order.id) +
      "  " + order.status + "  " + order.total + " " + (order.currency || "") +
      (order.customer_id ? "  customer " + order.customer_id : "");
    var list = byId("orders");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  var realtime = new Realtime();
  var pill = byId("connection");
  realtime.on("state", function (change) {
    pill.textContent = change.current;
    pill.dataset.state = change.current;
  });
  realtime.subscribe("private-realtime.stats").bind("stats", function (snapshot) {
    snapshots.set(snapshot.node_id, { at: Date.now(), snapshot: snapshot });
    render();
  });
  var orders = realtime.subscribe("private-admin.orders");
  ["order.created", "order.updated", "order.status_changed", "order.cancelled"].forEach(function (event) {
    orders.bind(event, function (data) {
      orderLine(event, data);
    });
  });
  window.dashboard = { realtime: realtime, series: series, snapshots: snapshots };
})();
