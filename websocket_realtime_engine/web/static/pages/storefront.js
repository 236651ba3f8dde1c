/* The demo storefront: the catalogue with live prices and stock (public `products`), and the demo
 * customer's orders followed through their private channel `private-customer.{id}`, signed by the
 * engine's authenticate endpoint with the demo session cookie (the host's authorize_channel decides). */
(function () {
  "use strict";

  var STEPS = ["pending", "paid", "shipped", "delivered"];
  var products = new Map();
  var orders = new Map();

  function byId(id) {
    return document.getElementById(id);
  }

  function money(amount, currency) {
    return amount + " " + (currency || "EUR");
  }

  function renderProduct(product) {
    var list = byId("products");
    var card = list.querySelector('[data-product-id="' + CSS.escape(product.id) + '"]');
    if (!card) {
      card = byId("product-card").content.firstElementChild.cloneNode(true);
      card.dataset.productId = product.id;
      list.appendChild(card);
    }
    card.querySelector(".name").textContent = product.name;
    card.querySelector(".price").textContent = product.price;
    card.querySelector(".currency").textContent = product.currency || "EUR";
    var stock = product.stock;
    card.querySelector(".stock").textContent = stock === undefined ? "" : stock > 0 ? stock + " in stock" : "sold out";
  }

  function flash(element) {
    element.classList.remove("changed");
    void element.offsetWidth; // restart the animation
    element.classList.add("changed");
  }

  function renderOrder(order) {
    var list = byId("orders");
    var row = list.querySelector('[data-order-id="' + CSS.escape(order.id) + '"]');
    if (!row) {
      row = byId("order-row").content.firstElementChild.cloneNode(true);
      row.dataset.orderId = order.id;
      list.insertBefore(row, list.firstChild);
    }
    row.querySelector(".number").textContent = order.number || order.id;
    row.querySelector(".total").textContent = money(order.total, order.currency);
    row.querySelector(".status").textContent = order.status;
    row.dataset.status = order.status;
    var reached = STEPS.indexOf(order.status);
    row.querySelectorAll(".steps li").forEach(function (step, index) {
      step.classList.toggle("done", reached >= 0 && index <= reached);
    });
    byId("no-orders").hidden = orders.size > 0;
    flash(row);
  }

  function load() {
    return fetch("/demo/catalogue", { credentials: "same-origin" })
      .then(function (response) {
        return response.json();
      })
      .then(function (state) {
        state.products.forEach(function (product) {
          products.set(product.id, product);
          renderProduct(product);
        });
        state.orders.forEach(function (order) {
          orders.set(order.id, order);
          renderOrder(order);
        });
      });
  }

  function start(user) {
    byId("customer").textContent = "(" + user.info.name + ", " + user.id + ")";
    var realtime = new Realtime();
    var pill = byId("connection");
    realtime.on("state", function (change) {
      pill.textContent = change.current;
      pill.dataset.state = change.current;
    });
    var catalogue = realtime.subscribe("products");
    ["product.created", "product.updated", "product.stock_changed", "product.price_changed"].forEach(function (event) {
      catalogue.bind(event, function (data) {
        var product = Object.assign(products.get(data.product.id) || {}, data.product);
        products.set(product.id, product);
        renderProduct(product);
        flash(byId("products").querySelector('[data-product-id="' + CSS.escape(product.id) + '"]'));
      });
    });
    var mine = realtime.subscribe("private-customer." + user.channel_id);
    ["order.created", "order.updated", "order.status_changed", "order.cancelled"].forEach(function (event) {
      mine.bind(event, function (data) {
        orders.set(data.order.id, data.order);
        renderOrder(data.order);
      });
    });
    // missed publications that could not be recovered: reload the state
    [catalogue, mine].forEach(function (channel) {
      channel.on("recovery", function (info) {
        if (info.recovered === false) load();
      });
    });
    window.storefront = { realtime: realtime, products: products, orders: orders };
  }

  fetch("/demo/session", { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error("the demo session is served in demo mode only (serve --demo)");
      return response.json();
    })
    .then(function (answer) {
      return load().then(function () {
        start(answer.user);
      });
    })
    .catch(function (error) {
      byId("connection").textContent = error.message;
      byId("connection").dataset.state = "failed";
    });
})();
